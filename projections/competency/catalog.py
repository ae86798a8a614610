"""The loaded frameworks, programmes and alignment tables, indexed for the rules.

:meth:`Catalog.build` checks what one document cannot check alone (that
references resolve, that IRIs are unique across documents) and raises a
:class:`FrameworkError` naming the document and the path of the bad reference.
A catalog is immutable; the projection rules only read it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cached_property
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Iterable

import msgspec
from msgspec import UNSET

from lrs.contracts import FRAMEWORKS, files_named
from projections.competency.frameworks import (
    AlignmentTable,
    Document,
    Framework,
    FrameworkError,
    Program,
    competency_level_iri,
    read_document,
)

__all__ = [
    "FRAMEWORKS_DIR",
    "AlignmentTarget",
    "CompetencyInfo",
    "Catalog",
    "document_identity",
    "live_directories",
    "load_catalog",
    "load_live_catalog",
    "read_documents",
]

FRAMEWORKS_DIR: Traversable = FRAMEWORKS


@dataclass(frozen=True, slots=True)
class CompetencyInfo:
    iri: str
    code: str
    framework: str  # framework IRI
    framework_version: str
    levels: tuple[str, ...]  # level codes, lowest first

    def rank(self, level: str | None) -> int:
        """1 for the lowest level; 0 for "no level"."""
        return 0 if level is None else self.levels.index(level) + 1


@dataclass(frozen=True, slots=True)
class AlignmentTarget:
    """What evidence about an activity says: which competency, at which level,
    and how it is judged (cmi5 moveOn and masteryScore)."""

    competency: str
    level: str | None
    move_on: str = "Passed"
    mastery_score: float | None = None
    source: str = "objective"  # "objective" | "alignment"


@dataclass(frozen=True)
class Catalog:
    documents: tuple[Document, ...]
    competencies: dict[str, CompetencyInfo]
    # Objective activity IRI (competence or competence-level IRI) -> target.
    objectives: dict[str, AlignmentTarget]
    # Activity IRI -> targets from the alignment tables.
    alignments: dict[str, tuple[AlignmentTarget, ...]]
    # Competence IRI -> equivalent competences (symmetric), with level maps.
    equivalents: dict[str, tuple[tuple[str, dict[str, str]], ...]]
    programs: tuple[Program, ...]
    digest: str = field(default="")

    @classmethod
    def build(cls, documents: Iterable[tuple[str, Document]]) -> "Catalog":
        """``documents`` are (source name, document) pairs, already validated
        one by one with :func:`parse_document`."""
        named = list(documents)
        frameworks: dict[tuple[str, str], tuple[str, Framework]] = {}
        competencies: dict[str, CompetencyInfo] = {}
        level_owner: dict[str, tuple[str, str]] = {}  # scale level IRI -> (framework iri, code)
        iri_owner: dict[str, str] = {}

        for source, doc in named:
            if not isinstance(doc, Framework):
                continue
            key = (doc.iri, doc.version)
            if key in frameworks:
                raise FrameworkError(
                    f"framework {doc.iri} version {doc.version} is already defined by {frameworks[key][0]}",
                    "$.version",
                    source,
                )
            frameworks[key] = (source, doc)
            codes = tuple(level.code for level in doc.levels)
            for i, level in enumerate(doc.levels):
                _claim(iri_owner, level.iri, source, f"$.levels[{i}].iri")
                level_owner[level.iri] = (doc.iri, level.code)
            for a, area in enumerate(doc.areas):
                _claim(iri_owner, area.iri, source, f"$.areas[{a}].iri")
                for c, competence in enumerate(area.competences):
                    _claim(iri_owner, competence.iri, source, f"$.areas[{a}].competences[{c}].iri")
                    competencies[competence.iri] = CompetencyInfo(
                        competence.iri, competence.code, doc.iri, doc.version, codes
                    )

        objectives: dict[str, AlignmentTarget] = {}
        for info in competencies.values():
            objectives[info.iri] = AlignmentTarget(info.iri, None)
            for code in info.levels:
                objectives[competency_level_iri(info.iri, code)] = AlignmentTarget(info.iri, code)

        equivalents: dict[str, dict[str, dict[str, str]]] = {}
        for source, framework in frameworks.values():
            level_map = _level_equivalents(framework, level_owner, source)
            for a, area in enumerate(framework.areas):
                for c, competence in enumerate(area.competences):
                    for k, other in enumerate(competence.equivalent):
                        path = f"$.areas[{a}].competences[{c}].equivalent[{k}]"
                        if other not in competencies or other == competence.iri:
                            raise FrameworkError(f"unknown competence {other}", path, source)
                        other_fw = competencies[other].framework
                        forward = {mine: theirs for (mine, fw), theirs in level_map.items() if fw == other_fw}
                        backward = {theirs: mine for mine, theirs in forward.items()}
                        equivalents.setdefault(competence.iri, {}).setdefault(other, {}).update(forward)
                        equivalents.setdefault(other, {}).setdefault(competence.iri, {}).update(backward)

        programs: list[Program] = []
        alignments: dict[str, list[AlignmentTarget]] = {}
        seen_docs: dict[tuple[str, str, str], str] = {}
        for source, doc in named:
            if isinstance(doc, Framework):
                continue
            key = (type(doc).__name__, doc.iri, doc.version)
            if key in seen_docs:
                raise FrameworkError(
                    f"{doc.iri} version {doc.version} is already defined by {seen_docs[key]}", "$.version", source
                )
            seen_docs[key] = source
            if isinstance(doc, Program):
                _check_program(doc, frameworks, competencies, source)
                programs.append(doc)
            else:
                for target_activity, target in _alignment_targets(doc, competencies, source):
                    alignments.setdefault(target_activity, []).append(target)

        canonical = msgspec.json.encode(
            sorted(msgspec.json.encode(doc) for _, doc in named), order="sorted"
        )
        return cls(
            documents=tuple(doc for _, doc in named),
            competencies=competencies,
            objectives=objectives,
            alignments={k: tuple(v) for k, v in alignments.items()},
            equivalents={k: tuple(sorted(v.items())) for k, v in equivalents.items()},
            programs=tuple(sorted(programs, key=lambda p: (p.iri, p.version))),
            digest=hashlib.sha256(canonical).hexdigest(),
        )

    def rank(self, competency: str, level: str | None) -> int:
        return self.competencies[competency].rank(level)

    # -- indexes for the rules, computed once per catalog ------------------------

    @cached_property
    def program_needs(self) -> tuple[tuple[Program, tuple[tuple[str, int], ...]], ...]:
        """Each programme with its requirements as (competence IRI, needed level rank)."""
        return tuple(
            (p, tuple((r.competency, self.rank(r.competency, r.level)) for r in p.requirements))
            for p in self.programs
        )

    @cached_property
    def program_required(self) -> tuple[frozenset[str], ...]:
        """The competences each programme of :attr:`program_needs` requires, in its order."""
        return tuple(frozenset(competency for competency, _ in needs) for _, needs in self.program_needs)

    @cached_property
    def required_competencies(self) -> frozenset[str]:
        """Every competence some programme requires."""
        return frozenset(r.competency for p in self.programs for r in p.requirements)

    @cached_property
    def _expansions(self) -> dict[AlignmentTarget, tuple[tuple[str, str | None, int, str], ...]]:
        return {}

    def expansions(self, target: AlignmentTarget) -> tuple[tuple[str, str | None, int, str], ...]:
        """(competence, level, level rank, source) that evidence aligned to
        ``target`` counts for: the target itself, then its equivalents."""
        known = self._expansions.get(target)
        if known is None:
            found = [(target.competency, target.level, self.rank(target.competency, target.level), target.source)]
            for other, level_map in self.equivalents.get(target.competency, ()):
                if target.level is None:
                    found.append((other, None, self.rank(other, None), "equivalent"))
                elif target.level in level_map:
                    level = level_map[target.level]
                    found.append((other, level, self.rank(other, level), "equivalent"))
            known = self._expansions[target] = tuple(found)
        return known


def _claim(owner: dict[str, str], iri: str, source: str, path: str) -> None:
    if iri in owner:
        raise FrameworkError(f"IRI {iri} is already used by {owner[iri]}", path, source)
    owner[iri] = f"{source} {path}"


def _level_equivalents(
    framework: Framework, level_owner: dict[str, tuple[str, str]], source: str
) -> dict[tuple[str, str], str]:
    """(own level code, other framework IRI) -> other level code."""
    result: dict[tuple[str, str], str] = {}
    for i, level in enumerate(framework.levels):
        for k, other in enumerate(level.equivalent):
            if other not in level_owner or level_owner[other][0] == framework.iri:
                raise FrameworkError(f"unknown level {other}", f"$.levels[{i}].equivalent[{k}]", source)
            other_fw, other_code = level_owner[other]
            result[(level.code, other_fw)] = other_code
    return result


def _check_program(
    program: Program,
    frameworks: dict[tuple[str, str], tuple[str, Framework]],
    competencies: dict[str, CompetencyInfo],
    source: str,
) -> None:
    allowed: set[tuple[str, str]] = set()
    for i, ref in enumerate(program.frameworks):
        if (ref.iri, ref.version) not in frameworks:
            raise FrameworkError(f"unknown framework {ref.iri} version {ref.version}", f"$.frameworks[{i}]", source)
        allowed.add((ref.iri, ref.version))
    for i, requirement in enumerate(program.requirements):
        path = f"$.requirements[{i}]"
        info = competencies.get(requirement.competency)
        if info is None or (info.framework, info.framework_version) not in allowed:
            raise FrameworkError(
                f"competence {requirement.competency} is not in the programme's frameworks", f"{path}.competency", source
            )
        if requirement.level not in info.levels:
            raise FrameworkError(
                f"level {requirement.level!r} is not a level of {info.framework} (levels: {', '.join(info.levels)})",
                f"{path}.level",
                source,
            )


def _alignment_targets(
    table: AlignmentTable, competencies: dict[str, CompetencyInfo], source: str
) -> list[tuple[str, AlignmentTarget]]:
    result = []
    for i, rule in enumerate(table.alignments):
        path = f"$.alignments[{i}]"
        info = competencies.get(rule.competency)
        if info is None:
            raise FrameworkError(f"unknown competence {rule.competency}", f"{path}.competency", source)
        level = None if rule.level is UNSET else rule.level
        if level is not None and level not in info.levels:
            raise FrameworkError(
                f"level {level!r} is not a level of {info.framework} (levels: {', '.join(info.levels)})",
                f"{path}.level",
                source,
            )
        mastery = None if rule.mastery_score is UNSET else float(rule.mastery_score)
        result.append((rule.activity, AlignmentTarget(rule.competency, level, rule.move_on, mastery, "alignment")))
    return result


def document_identity(document: Document) -> tuple[str, str, str]:
    """What makes two documents the same one: kind, IRI and version."""
    return (type(document).__name__, document.iri, document.version)


def read_documents(directories: Iterable[Traversable]) -> list[tuple[str, Document]]:
    """The ``*.json`` documents of ``directories`` (missing ones are empty);
    a document of a later directory replaces one of an earlier directory
    with the same kind, IRI and version (within one directory, a second
    copy is refused when the catalog is built)."""
    found: list[tuple[str, Document]] = []
    for directory in directories:
        own = [(str(path), read_document(path)) for path in files_named(directory, ".json")]
        replaced = {document_identity(document) for _, document in own}
        found = [(name, d) for name, d in found if document_identity(d) not in replaced] + own
    return found


def live_directories(installed: Path | None) -> list[Traversable]:
    """The shipped documents' directory, then the installed ones'."""
    return [FRAMEWORKS_DIR] if installed is None else [FRAMEWORKS_DIR, installed]


def load_live_catalog(installed: Path | None) -> Catalog:
    """The catalog the LRS runs with: the shipped documents and those
    ``lrs frameworks load`` installed in ``installed``."""
    return Catalog.build(read_documents(live_directories(installed)))


def load_catalog(*paths: str | Traversable) -> Catalog:
    """A catalog of the documents in ``paths`` (files, or directories of
    ``*.json`` files); by default the shipped ``schemas/frameworks``."""
    files: list[Traversable] = []
    for path in paths or (FRAMEWORKS_DIR,):
        path = Path(path) if isinstance(path, str) else path
        files.extend(files_named(path, ".json") if path.is_dir() else [path])
    return Catalog.build((str(f), read_document(f)) for f in files)
