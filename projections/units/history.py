"""Roster changes as events of the log, and the membership history they fold to.

Pure.  Every roster load appends ``roster`` events to the hash-chained log
(so ``lrs audit verify``, the anchors and a replay cover the denominators),
one per slice of learners so that no event outgrows a NATS message::

    {"op": "load", "units": [{"id", "parent", "kind", "name"}, ...],
     "memberships": [{"learner", "unit", "valid_from", "valid_to"}, ...]}

(canonical JSON, sorted keys, times as UTC ISO 8601 with microseconds).
With personal data sealed (docs/privacy.md) each ``learner`` is a pseudonym
key and ``"sealed": {"<pseudonym key>": "<sealed clear key>", ...}`` holds
the clear keys of the event's learners under their own data keys
(lrs/store/learner_refs.py): an erasure makes them unreadable, the event's
bytes stay.  Events written before sealing name learners in clear.

Memberships are *bitemporal*: ``valid_from``/``valid_to`` say when the
learner was in the unit; ``recorded`` and ``superseded`` (the position and
stored time of the events) say when the LRS knew it.  A load never erases:

- for each learner it names, its memberships replace the learner's timeline
  from the earliest ``valid_from`` it gives on (the *cut*); a membership that
  started before the cut and was still open at it is ended at the cut (the
  end is recorded as a new row; the open row is kept, superseded);
- memberships of the timeline that start at or after the cut are superseded;
- nothing is deleted: a superseded row stays, with the event that
  superseded it.

So a retroactive rewrite (ending members in the past) is visible in the log
and in the history, and a question "as known at T" reads the rows recorded
at or before T and not superseded by then.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping, Sequence

import msgspec

from projections.units.roster import Membership, Roster, Unit

__all__ = [
    "ROSTER_EVENT",
    "LEARNERS_PER_EVENT",
    "Record",
    "roster_payloads",
    "parse_roster_payload",
    "sealed_of",
    "plan_memberships",
    "RosterFold",
]

ROSTER_EVENT = "roster"
LEARNERS_PER_EVENT = 1000  # about 150 KB of JSON: well under NATS's default 1 MB max_payload

_encode = msgspec.json.Encoder(order="sorted").encode
_decode = msgspec.json.Decoder().decode


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _moment(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text.replace("Z", "+00:00"))


def roster_payloads(roster: Roster, sealed: Mapping[str, str] | None = None) -> list[bytes]:
    """The payloads of the events that record ``roster``: the units with the
    first slice of learners, then one per further slice (a learner's
    memberships are never split across events).  ``sealed``: the sealed
    clear key of each (pseudonym-keyed) learner, carried by its event."""
    by_learner: dict[str, list[Membership]] = {}
    for m in roster.memberships:
        by_learner.setdefault(m.learner, []).append(m)
    learners = sorted(by_learner)
    slices = [learners[i : i + LEARNERS_PER_EVENT] for i in range(0, len(learners), LEARNERS_PER_EVENT)] or [[]]
    payloads = []
    for index, chunk in enumerate(slices):
        body: dict[str, Any] = {"op": "load", "units": [], "memberships": []}
        if index == 0:
            body["units"] = [
                {"id": u.unit_id, "parent": u.parent_id, "kind": u.kind, "name": u.name} for u in roster.units
            ]
        body["memberships"] = [
            {"learner": m.learner, "unit": m.unit_id, "valid_from": _iso(m.valid_from), "valid_to": _iso(m.valid_to)}
            for learner in chunk
            for m in sorted(by_learner[learner], key=lambda m: m.valid_from)
        ]
        if sealed:
            body["sealed"] = {learner: sealed[learner] for learner in chunk if learner in sealed}
        payloads.append(_encode(body))
    return payloads


def parse_roster_payload(payload: bytes) -> Roster:
    body = _decode(payload)
    if body.get("op") != "load":
        raise ValueError(f"unknown roster event op {body.get('op')!r}")
    return Roster(
        tuple(Unit(u["id"], u["parent"], u["kind"], u["name"]) for u in body["units"]),
        tuple(
            Membership(m["learner"], m["unit"], _moment(m["valid_from"]), _moment(m["valid_to"]))  # type: ignore[arg-type]
            for m in body["memberships"]
        ),
    )


class _Sealed(msgspec.Struct):
    sealed: dict[str, str] = {}


def sealed_of(payload: bytes) -> dict[str, str]:
    """The sealed clear keys a roster event carries (empty: not sealed)."""
    return msgspec.json.decode(payload, type=_Sealed).sealed


def plan_memberships(
    current: Mapping[str, Sequence[Membership]], roster: Roster
) -> tuple[list[Membership], list[Membership]]:
    """(current memberships to supersede, memberships to record) for ``roster``,
    given the current (not superseded) memberships of the learners it names."""
    given: dict[str, list[Membership]] = {}
    for m in roster.memberships:
        given.setdefault(m.learner, []).append(m)
    superseded: list[Membership] = []
    recorded: list[Membership] = []
    for learner in sorted(given):
        new = sorted(given[learner], key=lambda m: m.valid_from)
        cut = new[0].valid_from
        for old in sorted(current.get(learner, ()), key=lambda m: m.valid_from):
            if old.valid_from >= cut:
                if old not in new:
                    superseded.append(old)
                else:
                    new.remove(old)  # the same membership again: nothing changes
            elif old.valid_to is None or old.valid_to > cut:
                superseded.append(old)
                recorded.append(replace(old, valid_to=cut))  # its end is recorded
        recorded.extend(new)
    return superseded, recorded


@dataclass(slots=True)
class Record:
    """A row of ``roster_memberships``."""

    tenant: str
    membership: Membership
    recorded_position: int
    recorded_at: datetime
    superseded_position: int | None = None
    superseded_at: datetime | None = None

    def row(self) -> tuple[Any, ...]:
        m = self.membership
        return (
            self.tenant, m.learner, m.unit_id, m.valid_from, m.valid_to, self.recorded_position, self.recorded_at,
            self.superseded_position, self.superseded_at,
        )


class RosterFold:
    """The units and membership history that the roster events of a log fold
    to, fed in log order (a replay; the live store writes the same rows as
    each load commits)."""

    def __init__(self) -> None:
        self.units: dict[tuple[str, str], Unit] = {}
        self.records: list[Record] = []
        self._current: dict[tuple[str, str], list[Record]] = {}

    def add(self, position: int, stored: datetime, tenant: str, payload: bytes) -> None:
        roster = parse_roster_payload(payload)
        for unit in roster.units:
            self.units[(tenant, unit.unit_id)] = unit
        learners = {m.learner for m in roster.memberships}
        held = {learner: self._current.get((tenant, learner), []) for learner in learners}
        superseded, recorded = plan_memberships(
            {learner: [r.membership for r in records] for learner, records in held.items()}, roster
        )
        gone = set(superseded)
        for learner, records in held.items():
            kept = []
            for record in records:
                if record.membership in gone:
                    record.superseded_position, record.superseded_at = position, stored
                else:
                    kept.append(record)
            self._current[(tenant, learner)] = kept
        for m in recorded:
            record = Record(tenant, m, position, stored)
            self.records.append(record)
            self._current[(tenant, m.learner)].append(record)

    def unit_rows(self) -> list[tuple[Any, ...]]:
        return [(t, u.unit_id, u.parent_id, u.kind, u.name) for (t, _), u in sorted(self.units.items())]

    def membership_rows(self) -> list[tuple[Any, ...]]:
        return [r.row() for r in self.records]


def current_view(records: Iterable[Record]) -> list[Membership]:
    return [r.membership for r in records if r.superseded_position is None]
