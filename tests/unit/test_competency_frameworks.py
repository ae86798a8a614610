"""Framework documents: the shipped files, and broken ones failing with a path."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from lrs.cli import main
from projections.competency.catalog import FRAMEWORKS_DIR, Catalog, load_catalog, load_live_catalog
from projections.competency.frameworks import (
    Framework,
    FrameworkError,
    Program,
    competency_level_iri,
    parse_document,
    read_document,
)

DIGCOMP = FRAMEWORKS_DIR / "digcomp-2.2.json"
VIETNAM = FRAMEWORKS_DIR / "vn-tt02-2025-learners.json"
PROGRAM = FRAMEWORKS_DIR / "civil-servant-basic-digital-skills.program.json"
ALIGNMENT = FRAMEWORKS_DIR / "civil-servant-basic-digital-skills.alignment.json"

DIGCOMP_COMPETENCES = {
    "1.1": "Browsing, searching and filtering data, information and digital content",
    "1.2": "Evaluating data, information and digital content",
    "1.3": "Managing data, information and digital content",
    "2.1": "Interacting through digital technologies",
    "2.2": "Sharing through digital technologies",
    "2.3": "Engaging in citizenship through digital technologies",
    "2.4": "Collaborating through digital technologies",
    "2.5": "Netiquette",
    "2.6": "Managing digital identity",
    "3.1": "Developing digital content",
    "3.2": "Integrating and re-elaborating digital content",
    "3.3": "Copyright and licences",
    "3.4": "Programming",
    "4.1": "Protecting devices",
    "4.2": "Protecting personal data and privacy",
    "4.3": "Protecting health and well-being",
    "4.4": "Protecting the environment",
    "5.1": "Solving technical problems",
    "5.2": "Identifying needs and technological responses",
    "5.3": "Creatively using digital technologies",
    "5.4": "Identifying digital competence gaps",
}


def _raw(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _error(document: dict) -> FrameworkError:
    with pytest.raises(FrameworkError) as info:
        parse_document(json.dumps(document).encode())
    return info.value


# -- shipped documents ----------------------------------------------------------


def test_digcomp_has_5_areas_21_official_competences_and_8_levels() -> None:
    framework = read_document(DIGCOMP)
    assert isinstance(framework, Framework)
    assert framework.version == "2.2"
    assert [area.title["en"] for area in framework.areas] == [
        "Information and data literacy",
        "Communication and collaboration",
        "Digital content creation",
        "Safety",
        "Problem solving",
    ]
    assert {c.code: c.title["en"] for c in framework.competences()} == DIGCOMP_COMPETENCES
    assert [level.code for level in framework.levels] == [str(i) for i in range(1, 9)]


def test_vietnamese_learner_framework_matches_digcomp_in_areas_1_to_5_and_adds_ai() -> None:
    framework = read_document(VIETNAM)
    digcomp = read_document(DIGCOMP)
    assert isinstance(framework, Framework) and isinstance(digcomp, Framework)
    assert len(framework.areas) == 6
    assert len(framework.competences()) == 24
    assert [level.code for level in framework.levels] == ["CB1", "CB2", "TC1", "TC2", "NC1", "NC2", "CS1", "CS2"]
    digcomp_by_code = {c.code: c.iri for c in digcomp.competences()}
    for area in framework.areas[:5]:
        for competence in area.competences:
            assert competence.equivalent == (digcomp_by_code[competence.code],)
    ai = framework.areas[5]
    assert ai.code == "6" and "trí tuệ nhân tạo" in ai.title["vi"]
    assert [c.code for c in ai.competences] == ["6.1", "6.2", "6.3"]
    assert all(c.equivalent == () for c in ai.competences)
    # each level maps to the DigComp level of the same rank
    assert [level.equivalent for level in framework.levels] == [(level.iri,) for level in digcomp.levels]


def test_every_competence_and_level_has_a_unique_iri_across_the_shipped_catalog() -> None:
    catalog = load_catalog()
    frameworks = [d for d in catalog.documents if isinstance(d, Framework)]
    iris = [f.iri for f in frameworks]
    for framework in frameworks:
        iris += [level.iri for level in framework.levels]
        iris += [area.iri for area in framework.areas]
        for competence in framework.competences():
            iris.append(competence.iri)
            iris += [competency_level_iri(competence.iri, level.code) for level in framework.levels]
    assert len(iris) == len(set(iris)) == 2 + 16 + 11 + 45 + 45 * 8
    assert len(catalog.competencies) == 45
    assert len(catalog.objectives) == 45 * 9


def test_program_requires_learner_framework_competences_and_alignment_covers_them() -> None:
    catalog = load_catalog()
    (program,) = catalog.programs
    assert isinstance(program, Program)
    required = {r.competency for r in program.requirements}
    assert all(catalog.competencies[iri].framework.endswith("vn-tt02-2025") for iri in required)
    aligned = {t.competency for targets in catalog.alignments.values() for t in targets}
    assert aligned == required


def test_catalog_digest_is_independent_of_document_order() -> None:
    files = sorted(FRAMEWORKS_DIR.glob("*.json"))
    forward = Catalog.build((str(f), read_document(f)) for f in files)
    backward = Catalog.build((str(f), read_document(f)) for f in reversed(files))
    assert forward.digest == backward.digest
    assert len(forward.digest) == 64


# -- one broken document fails with its path -----------------------------------------


def _break(path: Path, mutate) -> dict:  # type: ignore[no-untyped-def]
    document = copy.deepcopy(_raw(path))
    mutate(document)
    return document


@pytest.mark.parametrize(
    ("source", "mutate", "path", "message"),
    [
        (DIGCOMP, lambda d: d["areas"][2]["competences"][0].update(iri="3.1"), "$.areas[2].competences[0].iri", "absolute IRI"),
        (DIGCOMP, lambda d: d["areas"][0].update(code=1), "$.areas[0].code", "Expected `str`"),
        (DIGCOMP, lambda d: d["levels"][3].update(code="3"), "$.levels[3].code", "duplicate level code"),
        (DIGCOMP, lambda d: d["areas"][1]["competences"][1].update(code="2.1"), "$.areas[1].competences[1].code", "duplicate competence code"),
        (DIGCOMP, lambda d: d["areas"][4]["competences"][3].update(iri=d["areas"][0]["iri"]), "$.areas[4].competences[3].iri", "duplicate IRI"),
        (DIGCOMP, lambda d: d.update(levels=[]), "$.levels", "must not be empty"),
        (DIGCOMP, lambda d: d["areas"][3].update(competences=[]), "$.areas[3].competences", "must not be empty"),
        (DIGCOMP, lambda d: d["areas"][0].update(title={}), "$.areas[0].title", "at least one language"),
        (DIGCOMP, lambda d: d["areas"][0].update(title={"en": "  "}), "$.areas[0].title.en", "blank"),
        (DIGCOMP, lambda d: d["areas"][0].update(title={"english!": "x"}), "$.areas[0].title.english!", "language tag"),
        (DIGCOMP, lambda d: d["levels"][0].update(description=None), "$.levels[0].description", "got `null`"),
        (DIGCOMP, lambda d: d["areas"][0]["competences"][0].update(levels=[]), "$.areas[0].competences[0]", "unknown field `levels`"),
        (DIGCOMP, lambda d: d.update(version=" "), "$.version", "blank"),
        (DIGCOMP, lambda d: d.update(format="lrs.competency/2"), "$.format", "Invalid enum value"),
        (DIGCOMP, lambda d: d.update(kind="taxonomy"), "$.kind", "Invalid value"),
        (PROGRAM, lambda d: d.update(requirements=[]), "$.requirements", "must not be empty"),
        (PROGRAM, lambda d: d["requirements"].append(dict(d["requirements"][0])), "$.requirements[9].competency", "duplicate required competency"),
        (PROGRAM, lambda d: d.update(target_rate=1.5), "$.target_rate", "between 0 and 1"),
        (ALIGNMENT, lambda d: d["alignments"][2].update(move_on="NotApplicable"), "$.alignments[2].move_on", "move_on must be one of"),
        (ALIGNMENT, lambda d: d["alignments"][1].update(mastery_score=-0.1), "$.alignments[1].mastery_score", "between 0 and 1"),
        (ALIGNMENT, lambda d: d["alignments"].append(dict(d["alignments"][0])), "$.alignments[9]", "duplicate alignment"),
    ],
)
def test_broken_document_fails_with_its_path(source: Path, mutate, path: str, message: str) -> None:  # type: ignore[no-untyped-def]
    error = _error(_break(source, mutate))
    assert error.path == path
    assert message in error.message


def test_malformed_json_names_the_file_and_no_json_path(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{"format": ')
    with pytest.raises(FrameworkError) as info:
        read_document(broken)
    assert info.value.path is None
    assert str(info.value).startswith(f"{broken}: not valid JSON")


# -- references between documents ----------------------------------------------------


def _catalog_with(replacements: dict[Path, dict]) -> Catalog:
    named = []
    for path in sorted(FRAMEWORKS_DIR.glob("*.json")):
        document = replacements.get(path)
        named.append((str(path), parse_document(json.dumps(document)) if document else read_document(path)))
    return Catalog.build(named)


@pytest.mark.parametrize(
    ("source", "mutate", "path", "message"),
    [
        (PROGRAM, lambda d: d["frameworks"][0].update(version="9.9"), "$.frameworks[0]", "unknown framework"),
        (PROGRAM, lambda d: d["requirements"][4].update(level="4"), "$.requirements[4].level", "not a level"),
        (PROGRAM, lambda d: d["requirements"][0].update(competency="https://lrs.example.org/competency/digcomp/2.2/competences/1.1"), "$.requirements[0].competency", "not in the programme's frameworks"),
        (ALIGNMENT, lambda d: d["alignments"][3].update(competency="https://example.org/nowhere"), "$.alignments[3].competency", "unknown competence"),
        (ALIGNMENT, lambda d: d["alignments"][0].update(level="8"), "$.alignments[0].level", "not a level"),
        (VIETNAM, lambda d: d["areas"][1]["competences"][0].update(equivalent=["https://example.org/x"]), "$.areas[1].competences[0].equivalent[0]", "unknown competence"),
        (VIETNAM, lambda d: d["levels"][2].update(equivalent=["https://example.org/level"]), "$.levels[2].equivalent[0]", "unknown level"),
        (VIETNAM, lambda d: d["areas"][5]["competences"][0].update(iri=_raw(DIGCOMP)["areas"][0]["competences"][0]["iri"]), "$.areas[5].competences[0].iri", "already used"),
    ],
)
def test_broken_reference_fails_with_the_referring_path(source: Path, mutate, path: str, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(FrameworkError) as info:
        _catalog_with({source: _break(source, mutate)})
    assert info.value.path == path
    assert message in info.value.message
    assert info.value.source == str(source)


def test_same_framework_version_twice_is_refused() -> None:
    named = [(str(DIGCOMP), read_document(DIGCOMP)), ("copy.json", read_document(DIGCOMP))]
    with pytest.raises(FrameworkError) as info:
        Catalog.build(named)
    assert info.value.source == "copy.json"
    assert "already defined" in info.value.message


def test_two_versions_of_one_framework_are_live_at_once() -> None:
    newer = _raw(DIGCOMP)
    newer["version"] = "2.3"
    text = json.dumps(newer).replace("/digcomp/2.2/", "/digcomp/2.3/")
    catalog = Catalog.build([(str(DIGCOMP), read_document(DIGCOMP)), ("digcomp-2.3.json", parse_document(text))])
    versions = {(info.framework, info.framework_version) for info in catalog.competencies.values()}
    assert versions == {("https://lrs.example.org/competency/digcomp", "2.2"), ("https://lrs.example.org/competency/digcomp", "2.3")}


# -- lrs frameworks load ---------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(FRAMEWORKS_DIR.glob("*.json")), ids=lambda p: p.name)
def test_cli_validates_each_shipped_document(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["frameworks", "load", str(path)]) == 0
    assert capsys.readouterr().out.startswith("valid: ")


def test_cli_reports_a_broken_reference_with_file_and_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "program.json"
    broken.write_text(json.dumps(_break(PROGRAM, lambda d: d["requirements"][2].update(level="B1"))))
    assert main(["frameworks", "load", str(broken)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"lrs frameworks load: invalid: {broken}: $.requirements[2].level: level 'B1' is not a level")
    assert err.count("\n") == 1


@pytest.mark.parametrize(
    ("content", "message"), [('{"format": ', "not valid JSON: "), ("", "not valid JSON: ")], ids=["not-json", "empty"],
)
def test_cli_reports_a_file_error_on_one_line_without_a_json_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, message: str
) -> None:
    file = tmp_path / "framework.json"
    file.write_text(content)
    assert main(["frameworks", "load", str(file)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"lrs frameworks load: invalid: {file}: {message}"), err
    assert err.count("\n") == 1 and "$" not in err, err


def test_cli_reports_an_unreadable_file_as_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:  # a directory: it cannot be opened
        main(["frameworks", "load", str(tmp_path)])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"lrs frameworks load: argument FILE: cannot read {tmp_path}: Is a directory"), err
    assert err.count("\n") == 1 and "$" not in err, err


def test_cli_context_directory_replaces_the_default(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Without the frameworks it builds on, a programme cannot be validated.
    assert main(["frameworks", "load", str(PROGRAM), "--context", str(tmp_path)]) == 1
    assert "$.frameworks[0]: unknown framework" in capsys.readouterr().err


# -- loading documents into the live set -------------------------------------------------

NEW_COURSE = "https://lrs.example.org/courses/e-signatures"


def _new_alignment(version: str = "2026.1", level: str = "CB2") -> dict:
    return {
        "format": "lrs.competency/1",
        "kind": "alignment",
        "iri": NEW_COURSE,
        "version": version,
        "title": {"en": "Electronic signatures"},
        "alignments": [
            {
                "activity": f"{NEW_COURSE}/modules/signing",
                "competency": "https://lrs.example.org/competency/vn-tt02-2025/1.0/competences/4.1",
                "level": level,
                "move_on": "Passed",
            }
        ],
    }


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "installed"
    monkeypatch.setenv("LRS_FRAMEWORKS_DIR", str(directory))
    return directory


def _write(path: Path, document: dict) -> Path:
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def test_a_loaded_alignment_becomes_live_beside_the_shipped_documents(
    tmp_path: Path, installed: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = _write(tmp_path / "e-signatures.json", _new_alignment())
    assert main(["frameworks", "load", str(source)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("valid: alignment for course https://lrs.example.org/courses/e-signatures version 2026.1")
    (copy,) = installed.glob("*.json")
    assert f"loaded: {copy}" in out and "lrs replay competency" in out
    # the service picks documents up by itself (docs/competency.md): no restart asked of it
    assert "a running `lrs serve` reads it within LRS_FRAMEWORKS_POLL_S" in out
    assert "restart the service" not in out
    assert copy.read_bytes() == source.read_bytes()

    live = load_live_catalog(installed)
    assert f"{NEW_COURSE}/modules/signing" in live.alignments
    assert live.competencies == load_catalog().competencies  # the shipped frameworks are still there
    assert live.digest != load_catalog().digest  # so the projection asks for a replay

    assert main(["frameworks", "list"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert len(listed) == len(list(FRAMEWORKS_DIR.glob("*.json"))) + 1
    assert f"alignment for course {NEW_COURSE} version 2026.1: 1 rules\t{copy}" in listed
    assert copy.name == "alignment-lrs.example.org-courses-e-signatures-2026.1.json"


def test_loading_the_same_document_again_replaces_it(tmp_path: Path, installed: Path) -> None:
    assert main(["frameworks", "load", str(_write(tmp_path / "a.json", _new_alignment(level="CB1")))]) == 0
    assert main(["frameworks", "load", str(_write(tmp_path / "b.json", _new_alignment(level="TC1")))]) == 0
    (copy,) = installed.glob("*.json")
    assert _raw(copy)["alignments"][0]["level"] == "TC1"
    assert main(["frameworks", "load", str(_write(tmp_path / "c.json", _new_alignment(version="2027.1")))]) == 0
    assert len(list(installed.glob("*.json"))) == 2  # another version is another document
    assert load_live_catalog(installed).alignments[f"{NEW_COURSE}/modules/signing"]  # both versions live


def test_an_installed_document_replaces_the_shipped_one_of_the_same_version(tmp_path: Path, installed: Path) -> None:
    corrected = _raw(ALIGNMENT)
    corrected["alignments"] = corrected["alignments"][:1]
    assert main(["frameworks", "load", str(_write(tmp_path / "alignment.json", corrected))]) == 0
    live = load_live_catalog(installed)
    course = "https://lrs.example.org/courses/civil-servant-basic-digital-skills/modules"
    assert f"{course}/searching" in live.alignments and f"{course}/device-security" not in live.alignments


def test_an_invalid_document_or_a_check_loads_nothing(
    tmp_path: Path, installed: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = _new_alignment()
    broken["alignments"][0]["level"] = "Z9"
    assert main(["frameworks", "load", str(_write(tmp_path / "broken.json", broken))]) == 1
    assert "$.alignments[0].level" in capsys.readouterr().err
    assert main(["frameworks", "load", "--check", str(_write(tmp_path / "ok.json", _new_alignment()))]) == 0
    assert not installed.exists() or not list(installed.glob("*.json"))


def test_a_programme_may_build_on_a_framework_loaded_before(tmp_path: Path, installed: Path, capsys: pytest.CaptureFixture[str]) -> None:
    newer = json.loads(json.dumps(_raw(DIGCOMP)).replace("/digcomp/2.2/", "/digcomp/2.3/"))
    newer["version"] = "2.3"
    program = _raw(PROGRAM)
    program["iri"] = "https://lrs.example.org/competency/programs/digcomp-2.3-basics"
    program["frameworks"] = [{"iri": newer["iri"], "version": "2.3"}]
    program["requirements"] = [
        {"competency": f"{newer['iri']}/2.3/competences/1.1", "level": "2"},
    ]
    program_file = _write(tmp_path / "program.json", program)
    assert main(["frameworks", "load", str(program_file)]) == 1  # DigComp 2.3 is not live yet
    capsys.readouterr()
    assert main(["frameworks", "load", str(_write(tmp_path / "digcomp-2.3.json", newer))]) == 0
    assert main(["frameworks", "load", str(program_file)]) == 0, capsys.readouterr().err
    live = load_live_catalog(installed)
    assert {p.iri for p in live.programs} >= {program["iri"], _raw(PROGRAM)["iri"]}


def test_a_loaded_document_is_readable_by_the_service_user(tmp_path: Path, installed: Path) -> None:
    import os
    import stat

    previous = os.umask(0o022)
    try:
        assert main(["frameworks", "load", str(_write(tmp_path / "a.json", _new_alignment()))]) == 0
    finally:
        os.umask(previous)
    (copy,) = installed.glob("*.json")
    assert stat.S_IMODE(copy.stat().st_mode) == 0o644
    assert not list(installed.glob(".loading-*"))  # no temporary file left behind


def test_a_broken_loaded_document_is_named_with_what_to_do(tmp_path: Path, installed: Path, capsys: pytest.CaptureFixture[str]) -> None:
    installed.mkdir()
    (installed / "notes.json").write_text("[]", encoding="utf-8")
    assert main(["frameworks", "load", str(_write(tmp_path / "a.json", _new_alignment()))]) == 1
    err = capsys.readouterr().err
    assert str(installed / "notes.json") in err and "fix or remove" in err
    assert err.startswith("lrs frameworks load: invalid: ") and err.count("\n") == 1, err
    assert main(["frameworks", "list"]) == 1
