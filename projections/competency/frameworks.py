"""Competency frameworks, certification programmes and alignment tables as data.

Documents live in ``schemas/frameworks/*.json``; their format
(``"format": "lrs.competency/1"``) is described in
``schemas/frameworks/README.md``.  This module decodes and validates them
(pure: no I/O beyond :func:`read_document` and :func:`read_directory`), and
every problem is a :class:`FrameworkError` naming the JSON path it is at.

A competency-level IRI (what an objective activity names to say "this
competency at this level") is derived: ``<competence IRI>/levels/<level code>``.
"""

from __future__ import annotations

import re
from datetime import date
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Literal

import msgspec
from msgspec import UNSET, Struct, UnsetType

from lrs.contracts import files_named

__all__ = [
    "FORMAT",
    "MOVE_ON_CRITERIA",
    "FrameworkError",
    "Level",
    "Competence",
    "Area",
    "Framework",
    "FrameworkRef",
    "Requirement",
    "Program",
    "TargetRule",
    "AlignmentRule",
    "AlignmentTable",
    "Document",
    "competency_level_iri",
    "parse_document",
    "read_document",
    "read_directory",
]

FORMAT = "lrs.competency/1"

# cmi5 moveOn vocabulary (cmi5 section 13.1.4), minus "NotApplicable": an
# alignment that can never be satisfied says nothing about a competency.
MOVE_ON_CRITERIA = ("Passed", "Completed", "CompletedAndPassed", "CompletedOrPassed")

LangMap = dict[str, str]


class FrameworkError(ValueError):
    """A framework document is invalid; ``path`` is a JSON path into it, or
    None when the file itself is at fault (missing, unreadable, not JSON)."""

    def __init__(self, message: str, path: str | None = "$", source: str | None = None) -> None:
        self.message = message
        self.path = path
        self.source = source
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"{self.source}: " if self.source else ""
        at = f"{self.path}: " if self.path is not None else ""
        return f"{where}{at}{self.message}"


_OPTIONS = {"frozen": True, "kw_only": True, "forbid_unknown_fields": True}


class _Node(Struct, **_OPTIONS):
    pass


class Level(_Node, **_OPTIONS):
    code: str
    iri: str
    title: LangMap
    description: LangMap | UnsetType = UNSET
    equivalent: tuple[str, ...] = ()


class Competence(_Node, **_OPTIONS):
    code: str
    iri: str
    title: LangMap
    description: LangMap | UnsetType = UNSET
    equivalent: tuple[str, ...] = ()


class Area(_Node, **_OPTIONS):
    code: str
    iri: str
    title: LangMap
    description: LangMap | UnsetType = UNSET
    competences: tuple[Competence, ...]


class _Document(_Node, tag_field="kind", **_OPTIONS):
    format: Literal["lrs.competency/1"]
    iri: str
    version: str
    title: LangMap
    description: LangMap | UnsetType = UNSET


class Framework(_Document, tag="framework", **_OPTIONS):
    """Areas of competences, and one ordered scale of levels (lowest first)."""

    source: str | UnsetType = UNSET
    levels: tuple[Level, ...]
    areas: tuple[Area, ...]

    def competences(self) -> list[Competence]:
        return [c for area in self.areas for c in area.competences]


class FrameworkRef(_Node, **_OPTIONS):
    iri: str
    version: str


class Requirement(_Node, **_OPTIONS):
    competency: str  # competence IRI
    level: str  # level code in that competence's framework


class TargetRule(_Node, **_OPTIONS):
    """``rate`` of a unit's roster certified by the end of the day ``by``
    (an ISO date), for every unit (no ``unit``) or for ``unit`` and the
    units below it that have no schedule of their own."""

    rate: float
    by: str
    unit: str | UnsetType = UNSET


class Program(_Document, tag="program", **_OPTIONS):
    """Certified when every required competence reaches its required level."""

    frameworks: tuple[FrameworkRef, ...]
    requirements: tuple[Requirement, ...]
    target_rate: float | UnsetType = UNSET  # share of a unit expected certified (undated)
    targets: tuple[TargetRule, ...] = ()  # dated schedule (instead of target_rate)


class AlignmentRule(_Node, **_OPTIONS):
    activity: str  # activity IRI (the course itself, a block or an AU)
    competency: str  # competence IRI
    level: str | UnsetType = UNSET  # level code; absent: the competence at no level
    mastery_score: float | UnsetType = UNSET  # cmi5 masteryScore, 0..1
    move_on: str = "Passed"  # cmi5 moveOn criterion, see MOVE_ON_CRITERIA


class AlignmentTable(_Document, tag="alignment", **_OPTIONS):
    """Alignment of one course's activities; ``iri`` is the course activity IRI."""

    alignments: tuple[AlignmentRule, ...]


Document = Framework | Program | AlignmentTable

_DECODER = msgspec.json.Decoder(Document)
_IRI = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:[^\s<>\"{}|\\^`]+$")
_LANGUAGE_TAG = re.compile(r"^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$")
_MSGSPEC_PATH = re.compile(r"^(?P<message>.*) - at `(?P<path>\$[^`]*)`$", re.S)


def competency_level_iri(competency_iri: str, level_code: str) -> str:
    """The IRI naming ``competency_iri`` at level ``level_code``."""
    return f"{competency_iri}/levels/{level_code}"


def parse_document(data: bytes | str, source: str | None = None) -> Document:
    """Decode and validate one document on its own (references to other
    documents are checked by :class:`projections.competency.catalog.Catalog`)."""
    try:
        document = _DECODER.decode(data)
    except msgspec.ValidationError as exc:
        match = _MSGSPEC_PATH.match(str(exc))
        if match:
            raise FrameworkError(match["message"], match["path"], source) from None
        raise FrameworkError(str(exc), "$", source) from None
    except msgspec.DecodeError as exc:
        raise FrameworkError(f"not valid JSON: {exc}", None, source) from None
    try:
        _validate(document)
    except FrameworkError as exc:
        exc.source = source
        raise
    return document


def read_document(path: str | Traversable) -> Document:
    path = Path(path) if isinstance(path, str) else path
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise FrameworkError(f"cannot read file: {exc.strerror}", None, str(path)) from None
    return parse_document(data, source=str(path))


def read_directory(directory: str | Traversable) -> list[Document]:
    """Every ``*.json`` document in ``directory`` (sorted by file name)."""
    directory = Path(directory) if isinstance(directory, str) else directory
    return [read_document(p) for p in files_named(directory, ".json")]


# -- validation of one document ------------------------------------------------


def _validate(document: Document) -> None:
    _check_iri(document.iri, "$.iri")
    _check_text(document.version, "$.version")
    _check_langmap(document.title, "$.title")
    if document.description is not UNSET:
        _check_langmap(document.description, "$.description")
    if isinstance(document, Framework):
        _validate_framework(document)
    elif isinstance(document, Program):
        _validate_program(document)
    else:
        _validate_alignment(document)


def _validate_framework(framework: Framework) -> None:
    iris = _UniqueIris()
    iris.add(framework.iri, "$.iri")
    _non_empty(framework.levels, "$.levels")
    level_codes: dict[str, str] = {}
    for i, level in enumerate(framework.levels):
        path = f"$.levels[{i}]"
        _check_node(level, path, iris)
        _unique(level_codes, level.code, f"{path}.code", "level code")
        for j, iri in enumerate(level.equivalent):
            _check_iri(iri, f"{path}.equivalent[{j}]")
    _non_empty(framework.areas, "$.areas")
    area_codes: dict[str, str] = {}
    competence_codes: dict[str, str] = {}
    for i, area in enumerate(framework.areas):
        path = f"$.areas[{i}]"
        _check_node(area, path, iris)
        _unique(area_codes, area.code, f"{path}.code", "area code")
        _non_empty(area.competences, f"{path}.competences")
        for j, competence in enumerate(area.competences):
            cpath = f"{path}.competences[{j}]"
            _check_node(competence, cpath, iris)
            _unique(competence_codes, competence.code, f"{cpath}.code", "competence code")
            for k, iri in enumerate(competence.equivalent):
                _check_iri(iri, f"{cpath}.equivalent[{k}]")
            for level in framework.levels:
                iris.add(competency_level_iri(competence.iri, level.code), f"{cpath}.iri")


def _validate_program(program: Program) -> None:
    _non_empty(program.frameworks, "$.frameworks")
    for i, ref in enumerate(program.frameworks):
        _check_iri(ref.iri, f"$.frameworks[{i}].iri")
        _check_text(ref.version, f"$.frameworks[{i}].version")
    _non_empty(program.requirements, "$.requirements")
    seen: dict[str, str] = {}
    for i, requirement in enumerate(program.requirements):
        path = f"$.requirements[{i}]"
        _check_iri(requirement.competency, f"{path}.competency")
        _check_text(requirement.level, f"{path}.level")
        _unique(seen, requirement.competency, f"{path}.competency", "required competency")
    if program.target_rate is not UNSET:
        _check_fraction(program.target_rate, "$.target_rate")
        if program.targets:
            raise FrameworkError("give target_rate (undated) or targets (a dated schedule), not both", "$.targets")
    seen_targets: dict[str, str] = {}
    for i, rule in enumerate(program.targets):
        path = f"$.targets[{i}]"
        _check_fraction(rule.rate, f"{path}.rate")
        try:
            date.fromisoformat(rule.by)
        except ValueError:
            raise FrameworkError(f"by must be an ISO date (YYYY-MM-DD), got {rule.by!r}", f"{path}.by") from None
        if rule.unit is not UNSET:
            _check_text(rule.unit, f"{path}.unit")
        scope = "" if rule.unit is UNSET else rule.unit
        _unique(seen_targets, f"{scope} {rule.by}", path, "target for this unit and date")


def _validate_alignment(table: AlignmentTable) -> None:
    _non_empty(table.alignments, "$.alignments")
    seen: dict[str, str] = {}
    for i, rule in enumerate(table.alignments):
        path = f"$.alignments[{i}]"
        _check_iri(rule.activity, f"{path}.activity")
        _check_iri(rule.competency, f"{path}.competency")
        if rule.level is not UNSET:
            _check_text(rule.level, f"{path}.level")
        if rule.mastery_score is not UNSET:
            _check_fraction(rule.mastery_score, f"{path}.mastery_score")
        if rule.move_on not in MOVE_ON_CRITERIA:
            raise FrameworkError(
                f"move_on must be one of {', '.join(MOVE_ON_CRITERIA)}, got {rule.move_on!r}",
                f"{path}.move_on",
            )
        _unique(seen, f"{rule.activity} {rule.competency}", path, "alignment of this activity to this competency")


class _UniqueIris:
    def __init__(self) -> None:
        self._seen: dict[str, str] = {}

    def add(self, iri: str, path: str) -> None:
        _unique(self._seen, iri, path, "IRI")


def _check_node(node: Level | Area | Competence, path: str, iris: _UniqueIris) -> None:
    _check_text(node.code, f"{path}.code")
    _check_iri(node.iri, f"{path}.iri")
    iris.add(node.iri, f"{path}.iri")
    _check_langmap(node.title, f"{path}.title")
    if node.description is not UNSET:
        _check_langmap(node.description, f"{path}.description")


def _unique(seen: dict[str, str], key: str, path: str, what: str) -> None:
    if key in seen:
        raise FrameworkError(f"duplicate {what} {key!r} (first at {seen[key]})", path)
    seen[key] = path


def _non_empty(items: tuple[object, ...], path: str) -> None:
    if not items:
        raise FrameworkError("must not be empty", path)


def _check_text(value: str, path: str) -> None:
    if not value.strip():
        raise FrameworkError("must not be blank", path)


def _check_iri(value: str, path: str) -> None:
    if not _IRI.match(value):
        raise FrameworkError(f"not an absolute IRI: {value!r}", path)


def _check_fraction(value: float, path: str) -> None:
    if not 0.0 <= value <= 1.0:
        raise FrameworkError(f"must be between 0 and 1, got {value!r}", path)


def _check_langmap(value: LangMap, path: str) -> None:
    if not value:
        raise FrameworkError("needs at least one language", path)
    for tag, text in value.items():
        if not _LANGUAGE_TAG.match(tag):
            raise FrameworkError(f"not a language tag: {tag!r}", f"{path}.{tag}")
        _check_text(text, f"{path}.{tag}")
