"""Organisational units and roster memberships from files and request bodies.

Pure: parsing and validation only.  Two shapes are accepted:

JSON, one object with either or both lists::

    {"units": [{"id": "mic", "kind": "ministry", "name": "Ministry of ..."},
               {"id": "mic-ditd", "parent": "mic", "kind": "agency", "name": "..."}],
     "memberships": [{"learner": "mbox:mailto:a@example.gov.vn", "unit": "mic-ditd",
                      "valid_from": "2025-01-01", "valid_to": null}]}

CSV, one kind per file, told apart by the header row: ``id,parent,kind,name``
(units) or ``learner,unit,valid_from,valid_to`` (memberships); an empty cell
is "none".

Rules: ``kind`` is ``ministry`` (no parent), ``agency`` (parent a ministry) or
``unit`` (parent an agency or a unit); ``learner`` is an actor's IFI key
(:func:`lrs.xapi.identity.ifi_key`: ``mbox:mailto:...``,
``mbox_sha1sum:<40 hex>``, ``openid:<uri>``, ``account:<homePage>|<name>``);
``valid_from`` / ``valid_to`` are ISO 8601 dates (midnight UTC) or date-times
(UTC when no offset is given), ``valid_to`` exclusive and optional; a
learner's memberships do not overlap.  Every problem found is reported with
where it is (``FILE line N`` or ``$.memberships[3].valid_from``).
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping

__all__ = [
    "KINDS",
    "Unit",
    "Membership",
    "Roster",
    "RosterError",
    "parse_learner",
    "parse_json",
    "parse_csv",
    "read_roster",
    "check_roster",
]

KINDS = ("ministry", "agency", "unit")
_PARENT_KINDS: dict[str, tuple[str, ...]] = {"ministry": (), "agency": ("ministry",), "unit": ("agency", "unit")}
UNIT_COLUMNS = ("id", "parent", "kind", "name")
MEMBERSHIP_COLUMNS = ("learner", "unit", "valid_from", "valid_to")
MAX_REPORTED = 50
_UNIT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
_SHA1 = re.compile(r"^[0-9a-fA-F]{40}$")
_ABSOLUTE_IRI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:\S+$")


@dataclass(frozen=True, slots=True)
class Unit:
    unit_id: str
    parent_id: str | None
    kind: str
    name: str


@dataclass(frozen=True, slots=True)
class Membership:
    learner: str
    unit_id: str
    valid_from: datetime
    valid_to: datetime | None  # exclusive; None: open

    def covers(self, moment: datetime) -> bool:
        return self.valid_from <= moment and (self.valid_to is None or moment < self.valid_to)


@dataclass(frozen=True, slots=True)
class Roster:
    units: tuple[Unit, ...] = ()
    memberships: tuple[Membership, ...] = ()


class RosterError(ValueError):
    """The roster is invalid; ``problems`` are "where: what" lines."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        shown = problems[:MAX_REPORTED]
        more = f"\n... and {len(problems) - len(shown)} more" if len(problems) > len(shown) else ""
        super().__init__("\n".join(shown) + more)


class _Problems:
    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, where: str, message: str) -> None:
        self.items.append(f"{where}: {message}")

    def raise_any(self) -> None:
        if self.items:
            raise RosterError(self.items)


def parse_learner(value: str) -> str:
    """``value`` if it is a canonical IFI key; raises ValueError naming the forms."""
    kind, sep, rest = value.partition(":")
    ok = False
    if sep and rest and "\x00" not in value:
        if kind == "mbox":
            ok = rest.startswith("mailto:") and "@" in rest
        elif kind == "mbox_sha1sum":
            ok = bool(_SHA1.match(rest)) and rest == rest.lower()
        elif kind == "openid":
            ok = bool(_ABSOLUTE_IRI.match(rest))
        elif kind == "account":
            home, bar, name = rest.rpartition("|")
            ok = bool(bar and name and _ABSOLUTE_IRI.match(home))
    if not ok:
        raise ValueError(
            f"not an actor IFI key: {value!r} (expected mbox:mailto:<address>, mbox_sha1sum:<40 lowercase hex>, "
            "openid:<uri> or account:<homePage>|<name>)"
        )
    return value


def _moment(value: Any) -> datetime:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"expected an ISO 8601 date or date-time, got {value!r}")
    text = value.strip()
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), datetime.min.time(), tzinfo=timezone.utc)
        parsed = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise ValueError(f"expected an ISO 8601 date or date-time, got {value!r}") from None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {type(value).__name__}")
    if "\x00" in value:
        raise ValueError(f"{value!r} contains a NUL character")
    return value.strip() or None


def _unit(fields: Mapping[str, Any], where: str, problems: _Problems) -> Unit | None:
    try:
        unit_id = _text(fields.get("id"))
        if unit_id is None or not _UNIT_ID.match(unit_id):
            raise ValueError(f"id must be 1-128 letters, digits, '.', '_', ':' or '-', got {fields.get('id')!r}")
        parent = _text(fields.get("parent"))
        kind = _text(fields.get("kind"))
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {fields.get('kind')!r}")
        name = _text(fields.get("name"))
        if name is None:
            raise ValueError("name is required")
    except ValueError as exc:
        problems.add(where, str(exc))
        return None
    return Unit(unit_id, parent, kind, name)


def _membership(fields: Mapping[str, Any], where: str, problems: _Problems) -> Membership | None:
    try:
        learner = parse_learner(_text(fields.get("learner")) or "")
        unit_id = _text(fields.get("unit"))
        if unit_id is None:
            raise ValueError("unit is required")
        valid_from = _moment(fields.get("valid_from"))
        raw_to = fields.get("valid_to")
        valid_to = None if raw_to is None or (isinstance(raw_to, str) and not raw_to.strip()) else _moment(raw_to)
        if valid_to is not None and valid_to <= valid_from:
            raise ValueError(f"valid_to {raw_to} is not after valid_from {fields.get('valid_from')}")
    except ValueError as exc:
        problems.add(where, str(exc))
        return None
    return Membership(learner, unit_id, valid_from, valid_to)


def parse_json(data: bytes | str | Any, source: str = "$") -> Roster:
    """A roster from a JSON document (bytes/str) or an already decoded value."""
    problems = _Problems()
    if isinstance(data, (bytes, str)):
        try:
            data = json.loads(data)
        except ValueError as exc:
            raise RosterError([f"{source}: not JSON: {exc}"]) from None
    if not isinstance(data, dict) or not set(data) <= {"units", "memberships"} or not data:
        raise RosterError([f"{source}: expected an object with \"units\" and/or \"memberships\" lists"])
    units, memberships = [], []
    for name, parse, out in (("units", _unit, units), ("memberships", _membership, memberships)):
        items = data.get(name, [])
        if not isinstance(items, list):
            problems.add(f"{source} $.{name}", "expected a list")
            continue
        allowed = set(UNIT_COLUMNS if name == "units" else MEMBERSHIP_COLUMNS)
        for i, item in enumerate(items):
            where = f"{source} $.{name}[{i}]"
            if not isinstance(item, dict):
                problems.add(where, "expected an object")
                continue
            unknown = sorted(set(item) - allowed)
            if unknown:
                problems.add(where, f"unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")
                continue
            parsed = parse(item, where, problems)
            if parsed is not None:
                out.append(parsed)
    problems.raise_any()
    return Roster(tuple(units), tuple(memberships))


def parse_csv(lines: Iterable[str], source: str = "<csv>") -> Roster:
    """A roster from CSV lines; the header says whether they are units or memberships."""
    reader = csv.reader(lines)
    header = next(reader, None)
    columns = tuple(c.strip().lower() for c in header or ())
    if columns == UNIT_COLUMNS:
        parse, is_units = _unit, True
    elif columns == MEMBERSHIP_COLUMNS:
        parse, is_units = _membership, False
    else:
        raise RosterError([
            f"{source} line 1: header must be {','.join(UNIT_COLUMNS)} (units) or "
            f"{','.join(MEMBERSHIP_COLUMNS)} (memberships), got {','.join(columns) or 'nothing'}"
        ])
    problems = _Problems()
    parsed: list[Any] = []
    for row in reader:
        where = f"{source} line {reader.line_num}"
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) != len(columns):
            problems.add(where, f"expected {len(columns)} fields, got {len(row)}")
            continue
        item = parse(dict(zip(columns, row)), where, problems)
        if item is not None:
            parsed.append(item)
    problems.raise_any()
    return Roster(tuple(parsed), ()) if is_units else Roster((), tuple(parsed))


def read_roster(path: Path) -> Roster:
    """A roster file: ``.json`` or ``.csv`` (UTF-8, an optional BOM is ignored)."""
    suffix = path.suffix.lower()
    if suffix == ".json":
        return parse_json(path.read_bytes(), str(path))
    if suffix == ".csv":
        with path.open(encoding="utf-8-sig", newline="") as handle:
            return parse_csv(handle, str(path))
    raise RosterError([f"{path}: expected a .json or .csv file"])


def _a(kind: str) -> str:
    return ("an " if kind == "agency" else "a ") + kind


def check_not_linked(roster: Roster, owner_of: Mapping[str, str]) -> None:
    """A learner the roster names must not be another person's identifier
    (``owner_of``: identifier -> person, for the roster's learners that are
    linked): its evidence counts for that person.  Raises RosterError."""
    problems = _Problems()
    for i, m in enumerate(roster.memberships):
        if m.learner in owner_of:
            problems.add(
                f"memberships[{i}] {m.learner}",
                f"is linked to the person {owner_of[m.learner]} as an identifier; roster that person, or unlink it first",
            )
    problems.raise_any()


def check_roster(roster: Roster, existing_units: Mapping[str, Unit]) -> None:
    """Cross-checks against the units already loaded: parents and membership
    units exist, each parent has a kind that may hold the child, the hierarchy
    has no cycle, ids are unique in the roster and a learner's memberships do
    not overlap.  Raises RosterError with every problem found."""
    problems = _Problems()
    merged = dict(existing_units)
    seen: set[str] = set()
    for i, unit in enumerate(roster.units):
        if unit.unit_id in seen:
            problems.add(f"units[{i}] {unit.unit_id}", "unit id appears twice")
        seen.add(unit.unit_id)
        merged[unit.unit_id] = unit
    for i, unit in enumerate(roster.units):
        where = f"units[{i}] {unit.unit_id}"
        allowed = _PARENT_KINDS[unit.kind]
        if unit.parent_id is None:
            if allowed:
                problems.add(where, f"{_a(unit.kind)} needs a parent ({' or '.join(allowed)})")
            continue
        parent = merged.get(unit.parent_id)
        if parent is None:
            problems.add(where, f"parent {unit.parent_id!r} is neither loaded nor in this roster")
        elif parent.kind not in allowed:
            expected = " or ".join(allowed) if allowed else "no parent"
            problems.add(where, f"{_a(unit.kind)}'s parent must be {expected}; {parent.unit_id!r} is {_a(parent.kind)}")
    problems.raise_any()
    for unit in roster.units:  # kinds only allow unit -> unit loops
        path, current = [unit.unit_id], merged.get(unit.parent_id or "")
        while current is not None:
            if current.unit_id in path:
                problems.add(f"unit {unit.unit_id}", f"the hierarchy has a cycle: {' -> '.join(path + [current.unit_id])}")
                break
            path.append(current.unit_id)
            current = merged.get(current.parent_id or "")
    by_learner: dict[str, list[tuple[int, Membership]]] = {}
    for i, membership in enumerate(roster.memberships):
        if membership.unit_id not in merged:
            problems.add(f"memberships[{i}] {membership.learner}", f"unit {membership.unit_id!r} is neither loaded nor in this roster")
        by_learner.setdefault(membership.learner, []).append((i, membership))
    for learner, items in by_learner.items():
        items.sort(key=lambda pair: pair[1].valid_from)
        for (_, before), (j, after) in zip(items, items[1:]):
            if before.valid_to is None or before.valid_to > after.valid_from:
                problems.add(
                    f"memberships[{j}] {learner}",
                    f"overlaps the membership in {before.unit_id!r} from {before.valid_from.isoformat()} "
                    f"(a learner is in one unit at a time; end the earlier one with valid_to)",
                )
    problems.raise_any()
