"""Rebuilding the competency state from the whole log in memory, for replay.

The live projection folds a batch at a time and round-trips to Postgres for
every batch (read the learners' states, write them back).  A replay does not
need that: it reads the log once, keeps each learner's events in memory,
folds every learner exactly once at the end, and hands back the rows to copy
into fresh tables.

It gives what the live projection gives, because the rules are a fold over a
*set* of evidence and voided ids (``evolve_many`` is property-tested equal to
``evolve`` one event at a time, in any order): what differs is only when the
fold runs.  Routing follows :class:`~projections.competency.store.CompetencyProjection`:

- a statement's evidence goes to its learner; the first statement with an id
  (per tenant) names the learner that id belongs to;
- every voiding is remembered (the first one per target); at the end a
  voided statement that is some learner's evidence reaches that learner,
  whichever came first in the log.

An event the rules raise on while reading it is returned as failed (the
runner parks it), as the live projection would after its retries.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import msgspec

from lrs.payload_codec import open_payload

from projections.competency.catalog import Catalog
from projections.competency.model import LearnerState, StatementEvidence, StatementVoided
from projections.competency.policy import evolve_many, interpret_stored
from projections.competency.rows import mismatch_rows

__all__ = ["LogRebuild", "RebuiltLearner", "interpret_event"]

Key = tuple[str, str]  # (tenant, learner)



def interpret_event(
    event_type: str, payload: bytes, catalog: Catalog
) -> StatementEvidence | StatementVoided | str | None:
    """What one event of the log means for the rebuild: evidence, a
    voiding, None (nothing), or, as a str, the error the rules raised on it.
    ``payload`` is as stored (zstd or JSON); a payload that does not open
    raises (lrs.payload_codec.DamagedPayload): the log is damaged, and the
    replay stops rather than park it."""
    if event_type != "statement":
        return None
    payload = open_payload(payload)
    try:
        meaning = interpret_stored(payload, catalog)
        if isinstance(meaning, StatementVoided):  # ids of other statements: stored as uuid columns
            uuid.UUID(meaning.target_id)
    except Exception as exc:  # the rules (or the ids) fail on this event: parked
        return repr(exc)
    return meaning


@dataclass(slots=True)
class RebuiltLearner:
    tenant: str
    state: LearnerState
    position: int  # the last event that concerns the learner


@dataclass
class LogRebuild:
    """Feed it the log with :meth:`add` (in position order), then
    :meth:`prepare` and :meth:`fold` each learner it returns; ``failed``
    lists the events the rules failed on (position, tenant, error)."""

    catalog: Catalog
    # (tenant, statement id) -> learner, for statements that are evidence
    owners: dict[tuple[str, str], str] = field(default_factory=dict)
    # (tenant, voided id) -> (voiding statement id, position), first voiding kept
    voids: dict[tuple[str, str], tuple[str, int]] = field(default_factory=dict)
    events: dict[Key, list[StatementEvidence | StatementVoided]] = field(default_factory=dict)
    positions: dict[Key, int] = field(default_factory=dict)
    failed: list[tuple[int, str, str]] = field(default_factory=list)  # (position, tenant, error)
    # rows of competency_mastery_mismatches, first statement with an id kept
    mismatches: dict[tuple[str, str], list[tuple[Any, ...]]] = field(default_factory=dict)
    routed: bool = False  # the voidings went to their learners (prepare)
    # (tenant, identifier) -> the person it is linked to at the end of the log
    persons: dict[tuple[str, str], str] = field(default_factory=dict)
    # (tenant, statement id) -> the position that named its owner, and its
    # mismatches: kept when given a dict (a replay read in shares compares
    # them across processes: read_shares.py)
    owner_positions: dict[tuple[str, str], int] | None = None
    mismatch_positions: dict[tuple[str, str], int] | None = None

    def add(self, position: int, tenant: str, event_type: str, payload: bytes) -> None:
        self.take(position, tenant, interpret_event(event_type, payload, self.catalog))

    def add_page(self, page: Iterable[Sequence[Any]]) -> None:
        """:meth:`add` for each (position, tenant, event type, payload) of ``page``, in order."""
        catalog, take = self.catalog, self.take
        for position, tenant, event_type, payload in page:
            if event_type == "statement":
                meaning = interpret_event(event_type, payload, catalog)
                if meaning is not None:
                    take(position, tenant, meaning)

    def take(self, position: int, tenant: str, meaning: StatementEvidence | StatementVoided | str | None) -> None:
        """Route what the event at ``position`` means (:func:`interpret_event`)."""
        if meaning is None:
            return
        if isinstance(meaning, str):
            self.failed.append((position, tenant, meaning))
            return
        if isinstance(meaning, StatementVoided):
            self.voids.setdefault((tenant, meaning.target_id), (meaning.statement_id, position))
            return
        statement = (tenant, meaning.statement_id)
        if statement not in self.owners:  # the first statement with an id names its learner
            self.owners[statement] = meaning.learner
            if self.owner_positions is not None:
                self.owner_positions[statement] = position
        # A statement's evidence all carries its own masteryScore, and there
        # is no mismatch without one (most statements: no call for them).
        rows = mismatch_rows(tenant, meaning) if meaning.evidence[0].statement_mastery_score is not None else None
        if rows and statement not in self.mismatches:
            self.mismatches[statement] = rows
            if self.mismatch_positions is not None:
                self.mismatch_positions[statement] = position
        key = (tenant, meaning.learner)
        items = self.events.get(key)
        if items is None:
            self.events[key] = [meaning]
        else:
            items.append(meaning)
        self.positions[key] = position

    def prepare(self) -> list[Key]:
        """Route every voiding to the learner whose evidence it voids, and
        return the learners' keys in (tenant, learner) order; call once,
        after the last :meth:`add`, then :meth:`fold` each key (a second call
        routes nothing again)."""
        if self.routed:
            return sorted(self.events)
        self.routed = True
        for (tenant, actor), person in sorted(self.persons.items()):  # linked identifiers join their persons
            moved = self.events.pop((tenant, actor), None)
            if moved is None:
                continue
            moved = [msgspec.structs.replace(e, learner=person) for e in moved]  # type: ignore[type-var]
            key = (tenant, person)
            self.events.setdefault(key, []).extend(moved)
            self.positions[key] = max(self.positions.get(key, 0), self.positions.pop((tenant, actor)))
        for (tenant, target), (voider, position) in self.voids.items():
            learner = self._owner(tenant, target)
            if learner is None:
                continue
            key = (tenant, learner)
            self.events[key].append(StatementVoided(statement_id=voider, target_id=target))
            if position > self.positions[key]:
                self.positions[key] = position
        return sorted(self.events)

    def fold(self, key: Key) -> RebuiltLearner:
        tenant, learner = key
        state = evolve_many(LearnerState(learner=learner), self.events[key], self.catalog)
        return RebuiltLearner(tenant, state, self.positions[key])

    def voiding_rows(self) -> list[tuple[Any, ...]]:
        """Rows of ``competency_voids`` (ids as text: the uuid columns parse them)."""
        return [(t, target, voider) for (t, target), (voider, _) in self.voids.items()]

    def mismatch_rows(self) -> list[tuple[Any, ...]]:
        """Rows of ``competency_mastery_mismatches``."""
        return [row for rows in self.mismatches.values() for row in rows]

    def _owner(self, tenant: str, statement_id: str) -> str | None:
        actor = self.owners.get((tenant, statement_id))
        return None if actor is None else self.persons.get((tenant, actor), actor)

    def owner_rows(self) -> list[tuple[Any, ...]]:
        """Rows of ``competency_statement_learners`` (learner, and the actor
        when its evidence went to a linked person)."""
        rows = []
        for (t, sid), actor in self.owners.items():
            person = self.persons.get((t, actor))
            rows.append((t, sid, actor, None) if person is None else (t, sid, person, actor))
        return rows
