"""The competency projection in Postgres (tables in migrations/0100_competency.sql).

:class:`CompetencyProjection` applies log events inside the runner's
transaction: it asks the pure rules (policy.py) what the statement means,
routes it to the learner it concerns, folds it into that learner's state and
writes the state back.  A voiding statement reaches the voided statement's
learner through ``competency_statement_learners``; every voiding is kept in
``competency_voids`` so a statement projected after its voiding stays out.
A batch of events is folded with one read and one write per table; when a
learner's certification is earned or lost, the count of the unit the
learner is in changes in the same transaction (projections/units/store.py).
"""

from __future__ import annotations

import gc
import os
from datetime import datetime, timezone
from collections import OrderedDict
from typing import Any, AsyncIterator, Sequence

import asyncpg
import msgspec

from lrs.config import COMPETENCY_STATE_CACHE_SIZE
from lrs.identities import IDENTITY_EVENT
from lrs.store.erasure import ERASURE_EVENT
from lrs.store.identities import apply_identity_event, persons_of
from projections.competency.catalog import Catalog
from projections.competency.codec import decode_state, encode_state
from projections.competency.model import (
    RULE_VERSION,
    LearnerEvent,
    LearnerState,
    StatementEvidence,
    StatementVoided,
)
from projections.competency.fold_shares import Connect
from projections.competency.read_shares import rebuild_learners
from projections.competency.policy import evolve_many, interpret_stored, split, state_events
from projections.competency.rebuild import LogRebuild
from projections.competency.rows import (
    CERTIFICATION_COLUMNS,
    MISMATCH_COLUMNS,
    STATE_COLUMNS,
    certification_row,
    mismatch_rows,
    state_row,
)
from projections.replay import usable_cores
from projections.contract import Projection
from projections.events import LogEvent
from projections.units.erased import POLICIES, erased_learner, erased_policy
from projections.units.history import ROSTER_EVENT
from projections.units.series_store import recompute_series
from projections.units.rebuild import rebuild_dropped, rebuild_roster
from projections.units.store import (
    apply_certification_changes,
    apply_roster_event,
    drop_erased_learner,
    lock_roster_shared,
    place_all,
    recount_certified,
)
from projections.competency.row_changes import (
    Key,
    _columns,
    _competency_key,
    _earned_changes,
    _program_key,
    _rewrite,
    _row_differs,
)
from projections.competency.state_digest import DIGESTED_ROWS, digest, digest_with_position
from projections.competency.store_sql import (
    DELETE_CERTIFICATIONS,
    DELETE_LEARNER_STATES,
    DELETE_STATE_ROWS,
    INSERT_MISMATCHES,
    INSERT_STATEMENT_LEARNERS,
    INSERT_VOIDS,
    RELINK_STATEMENTS,
    SELECT_LINKED_STATEMENTS,
    SELECT_STATEMENT_LEARNERS,
    SELECT_STATES,
    SELECT_VOIDS,
    TRUNCATE_ALL,
    UNLINK_STATEMENTS,
    UPSERT_STATES,
)

__all__ = ["CompetencyProjection", "DIGESTED_ROWS", "digest", "digest_with_position", "decode_state"]

MAX_REPLAY_PROCESSES = 8


# The tables finish_rebuild fills, unqualified: the replay's scratch schema's.
ANALYZE_FINISHED = "ANALYZE learner_units, unit_headcounts, roster_clock, unit_certified, unit_series_heads, unit_series_certs"


class CompetencyProjection(Projection):
    """Each learner's competency state and programme certifications, and the
    per-unit certified counts that follow from them."""

    name = "competency"
    rule_version = RULE_VERSION
    bulk_rebuild = True
    tables = (
        "competency_learners",
        "competency_states",
        "competency_certifications",
        "competency_statement_learners",
        "competency_voids",
        "competency_mastery_mismatches",
        "unit_certified",
        # the roster, rebuilt from the log's roster events (placement and
        # headcounts follow in finish_rebuild)
        "roster_memberships",
        "unit_tree",
        "units",
        # a person's linked identifiers, rebuilt from the log's identity events
        "identity_links",
        # erased learners out of the unit totals (policy drop), from the log's erasure events
        "units_dropped_learners",
        # what finish_rebuild counts from those (placements, headcounts and
        # their clock, the series' per-day deltas): built beside them, so that
        # finishing a rebuild writes no live table
        "learner_units",
        "unit_headcounts",
        "roster_clock",
        "unit_series_heads",
        "unit_series_certs",
    )

    def __init__(
        self,
        catalog: Catalog,
        *,
        cache_size: int = COMPETENCY_STATE_CACHE_SIZE,
        replay_processes: int | None = None,
        replay_readers: int | None = None,
        erased_in_totals: str | None = None,
    ) -> None:
        self.catalog = catalog
        # LRS_ERASED_LEARNERS_IN_TOTALS (projections/units/erased.py): drop or count.
        self.erased_in_totals = erased_in_totals if erased_in_totals is not None else erased_policy(os.environ)
        if self.erased_in_totals not in POLICIES:
            raise ValueError(f"erased_in_totals must be drop or count, got {self.erased_in_totals!r}")
        self.catalog_digest = catalog.digest
        # Processes of a replay (this one and forked workers), each on its
        # own connection: by default the usable cores, no more than
        # MAX_REPLAY_PROCESSES.
        self.replay_processes = (
            replay_processes if replay_processes is not None else min(usable_cores(), MAX_REPLAY_PROCESSES)
        )
        # Of those, the processes that read the log.  All of them: each
        # reads the whole log and keeps its share of the learners, which it
        # folds and copies (read_shares.py).  One: this process reads, then
        # all fold a share each (fold_shares.py); between one and all: they
        # read chunks of the log each, sending what they keep here
        # (parallel_replay.py).  Never more than the processes (``--processes
        # 1``: this one only).  By default all of them, on two cores too now
        # that each judges its pages without waiting for the other's hints
        # page by page (docs/scaling.md, "Replay: both processes judging at
        # once").
        self.replay_readers = (
            min(replay_readers, self.replay_processes) if replay_readers is not None else self.replay_processes
        )
        # Learner states as committed at ``_cache_at`` (the checkpoint and the
        # count of rebuilds; most recently used last), so a batch does not
        # read and decode them again.  The runner calls
        # begin/committed/rolled_back around its transactions; the cache is
        # dropped whenever the stored checkpoint is not the one it was left
        # at (another runner, a failed commit) or a replay has replaced the
        # state since (even at the same position), so it never stands in for
        # state it has not seen.
        self._cache: OrderedDict[Key, LearnerState] = OrderedDict()
        self._cache_size = cache_size
        self._cache_at: tuple[int, int] | None = None
        self._rebuilds = 0  # as this transaction began
        self._pending: dict[Key, LearnerState] = {}  # this transaction's states

    def begin(self, checkpoint: int, rebuilds: int) -> None:
        """A transaction starts; the stored checkpoint (locked) is ``checkpoint``
        after ``rebuilds`` rebuilds."""
        self._pending.clear()
        self._rebuilds = rebuilds
        if self._cache_at != (checkpoint, rebuilds):
            self._cache.clear()
            self._cache_at = (checkpoint, rebuilds)

    def committed(self, checkpoint: int) -> None:
        """The transaction committed with the checkpoint at ``checkpoint``."""
        cache = self._cache
        for key, state in self._pending.items():
            cache[key] = state
            cache.move_to_end(key)
        self._pending.clear()
        while len(cache) > self._cache_size:
            cache.popitem(last=False)
        self._cache_at = (checkpoint, self._rebuilds)

    def rolled_back(self) -> None:
        """The transaction failed (or its outcome is unknown), or a savepoint
        in it was rolled back: forget what is in memory; the states are read
        from the database again (where the transaction sees its own writes)."""
        self._pending.clear()
        self._cache.clear()
        self._cache_at = None

    async def apply(self, conn: asyncpg.Connection, event: LogEvent) -> None:
        await self.apply_many(conn, [event])

    async def apply_many(self, conn: asyncpg.Connection, events: Sequence[LogEvent]) -> None:
        """Fold consecutive ``events`` with one read and one write per table.

        The rules do not depend on order, so applying the batch at once gives
        the state applying its events one by one would give; a learner's
        ``position`` is the last event of the batch that concerns it.  A
        statement's evidence goes to the person its actor is linked to (else
        to the actor); identity events then merge a newly linked identifier's
        state into its person, or give an unlinked one's statements back."""
        evidence: list[tuple[int, str, StatementEvidence]] = []
        voids: list[tuple[int, str, StatementVoided]] = []
        identities: list[LogEvent] = []
        erasures: list[LogEvent] = []
        for event in events:
            if event.event_type == ROSTER_EVENT:
                await apply_roster_event(conn, event.tenant, event.position, event.payload)
                continue
            if event.event_type == ERASURE_EVENT:
                erasures.append(event)
                continue
            if event.event_type == IDENTITY_EVENT:
                identities.append(event)
                continue
            if event.event_type != "statement":
                continue
            meaning = interpret_stored(event.payload, self.catalog)
            if isinstance(meaning, StatementVoided):
                voids.append((event.position, event.tenant, meaning))
            elif meaning is not None:
                evidence.append((event.position, event.tenant, meaning))
        if evidence or voids:
            await self._apply_statements(conn, evidence, voids)
        for event in identities:
            op, person, identifiers = await apply_identity_event(conn, event.tenant, event.position, event.payload)
            if op == "link":
                await self._merge(conn, event.tenant, person, identifiers, event.position)
            else:
                await self._split(conn, event.tenant, person, identifiers, event.position)
        if self.erased_in_totals == "drop":  # (in any order with the above: the totals come out the same)
            for event in erasures:
                await drop_erased_learner(conn, event.tenant, erased_learner(event.payload), event.position)

    async def _apply_statements(
        self,
        conn: asyncpg.Connection,
        evidence: list[tuple[int, str, StatementEvidence]],
        voids: list[tuple[int, str, StatementVoided]],
    ) -> None:
        if voids:
            await conn.execute(INSERT_VOIDS, *_columns(
                [(t, v.target_id, v.statement_id) for _, t, v in voids], 3))
        routed: dict[Key, list[tuple[int, StatementEvidence | StatementVoided]]] = {}
        if evidence:
            mismatches = [row for _, t, e in evidence for row in mismatch_rows(t, e)]  # by the statement's own actor
            if mismatches:
                await conn.execute(INSERT_MISMATCHES, *_columns(mismatches, len(MISMATCH_COLUMNS)))
            persons = await persons_of(conn, sorted({(t, e.learner) for _, t, e in evidence}))
            originals: list[str | None] = []  # the actor, when its evidence goes to a person
            if persons:
                routed_evidence = []
                for position, t, e in evidence:
                    person = persons.get((t, e.learner))
                    originals.append(None if person is None else e.learner)
                    routed_evidence.append((position, t, e if person is None else msgspec.structs.replace(e, learner=person)))
                evidence = routed_evidence
            else:
                originals = [None] * len(evidence)
            ids = [(t, e.statement_id) for _, t, e in evidence]
            voided_by = {
                (r["tenant"], str(r["target_id"])): str(r["voiding_statement_id"])
                for r in await conn.fetch(SELECT_VOIDS, *_columns(ids, 2))
            }
            await conn.execute(INSERT_STATEMENT_LEARNERS, *_columns(
                [(t, e.statement_id, e.learner, actor) for (_, t, e), actor in zip(evidence, originals)], 4))
            for position, tenant, item in evidence:
                changes = routed.setdefault((tenant, item.learner), [])
                changes.append((position, item))
                voider = voided_by.get((tenant, item.statement_id))
                if voider is not None:
                    changes.append((position, StatementVoided(statement_id=voider, target_id=item.statement_id)))
        if voids:
            targets = [(t, v.target_id) for _, t, v in voids]
            owner = {
                (r["tenant"], str(r["statement_id"])): r["learner"]
                for r in await conn.fetch(SELECT_STATEMENT_LEARNERS, *_columns(targets, 2))
            }
            for position, tenant, item in voids:
                learner = owner.get((tenant, item.target_id))
                if learner is not None:
                    routed.setdefault((tenant, learner), []).append((position, item))
        await self._change(conn, routed)

    async def _states(self, conn: asyncpg.Connection, keys: Sequence[Key]) -> dict[Key, LearnerState]:
        """The states of ``keys`` (this transaction's, the cache's, else the
        stored ones); a learner without a state is absent."""
        known: dict[Key, LearnerState] = {}
        missing: list[Key] = []
        for key in keys:
            state = self._pending.get(key) or self._cache.get(key)
            if state is None:
                missing.append(key)
            else:
                known[key] = state
        if missing:
            for r in await conn.fetch(SELECT_STATES, *_columns(missing, 2)):
                known[(r["tenant"], r["learner"])] = decode_state(r["state"])
        return known

    async def _merge(self, conn: asyncpg.Connection, tenant: str, person: str, identifiers: list[str], position: int) -> None:
        """Identifiers were linked to ``person``: their states join the person's."""
        keys = [(tenant, person), *((tenant, i) for i in identifiers)]
        known = await self._states(conn, keys)
        before = known.get((tenant, person)) or LearnerState(learner=person)
        merged: list[LearnerEvent] = []
        dropped: list[tuple[Key, LearnerState]] = []
        for identifier in identifiers:
            state = known.get((tenant, identifier))
            if state is not None and (state.evidence or state.voided):
                merged.extend(state_events(state, person))
            if state is not None:
                dropped.append(((tenant, identifier), state))
        await conn.execute(RELINK_STATEMENTS, tenant, person, identifiers)
        after = evolve_many(before, merged, self.catalog)
        changed = [] if after is before else [((tenant, person), before, after, position)]
        await self._write(conn, changed, dropped)

    async def _split(self, conn: asyncpg.Connection, tenant: str, person: str, identifiers: list[str], position: int) -> None:
        """Identifiers were unlinked from ``person``: their statements' evidence goes back to them."""
        by_actor: dict[str, set[str]] = {}
        for r in await conn.fetch(SELECT_LINKED_STATEMENTS, tenant, person, identifiers):
            by_actor.setdefault(r["actor"], set()).add(str(r["statement_id"]))
        if not by_actor:
            return
        known = await self._states(conn, [(tenant, person), *((tenant, a) for a in sorted(by_actor))])
        state = known.get((tenant, person)) or LearnerState(learner=person)
        changed: list[tuple[Key, LearnerState, LearnerState, int]] = []
        rest = state
        for actor in sorted(by_actor):
            rest, part = split(rest, by_actor[actor], self.catalog)
            own = known.get((tenant, actor)) or LearnerState(learner=actor)
            after = evolve_many(own, state_events(part, actor), self.catalog)
            if after is not own:
                changed.append(((tenant, actor), own, after, position))
        await conn.execute(UNLINK_STATEMENTS, tenant, person, sorted(by_actor))
        if rest is not state:
            changed.append(((tenant, person), state, rest, position))
        await self._write(conn, changed, [])

    async def _change(
        self, conn: asyncpg.Connection, routed: dict[Key, list[tuple[int, StatementEvidence | StatementVoided]]]
    ) -> None:
        keys = sorted(routed)
        known = await self._states(conn, keys)
        changed: list[tuple[Key, LearnerState, LearnerState, int]] = []
        for key in keys:
            before = known.get(key) or LearnerState(learner=key[1])
            items = routed[key]
            after = evolve_many(before, [item for _, item in items], self.catalog)
            if after is before:
                continue  # duplicates: nothing changes, not even the derived rows
            changed.append((key, before, after, max(position for position, _ in items)))
        await self._write(conn, changed, [])

    async def _write(
        self,
        conn: asyncpg.Connection,
        changed: list[tuple[Key, LearnerState, LearnerState, int]],
        dropped: list[tuple[Key, LearnerState]],
    ) -> None:
        """Write the states that changed, and remove those ``dropped`` (an
        identifier's, merged into its person's)."""
        if not changed and not dropped:
            return
        counts: list[tuple[str, str, str, str, int]] = []
        for key, before, after, _ in changed:
            counts.extend(_earned_changes(key, before, after))
        gone: list[tuple[str, ...]] = []
        new_rows: list[tuple[Any, ...]] = []
        uncertified: list[tuple[str, ...]] = []
        programs: list[tuple[Any, ...]] = []
        for (tenant, learner), before in dropped:
            empty = LearnerState(learner=learner)
            counts.extend(_earned_changes((tenant, learner), before, empty))
            _rewrite(tenant, learner, before.competencies, {}, state_row, _competency_key, gone, new_rows)
            _rewrite(tenant, learner, before.certifications, {}, certification_row, _program_key, uncertified, programs)
        if dropped:
            await conn.execute(DELETE_LEARNER_STATES, *_columns([key for key, _ in dropped], 2))
        if changed:
            tenants = [k[0] for k, _, _, _ in changed]
            learners = [k[1] for k, _, _, _ in changed]
            await conn.execute(
                UPSERT_STATES, tenants, learners, [encode_state(s) for _, _, s, _ in changed], [p for _, _, _, p in changed]
            )
        # Only the rows that differ are rewritten: a refold keeps every other
        # CompetencyState object as it was, and certifications are refolded
        # only with a required competency, most often into the same rows
        # (earned or not, when, by which statements).
        for (tenant, learner), before, after, _ in changed:
            _rewrite(tenant, learner, before.competencies, after.competencies, state_row, _competency_key, gone, new_rows,
                     _row_differs)
            if after.certifications is not before.certifications:
                _rewrite(tenant, learner, before.certifications, after.certifications, certification_row,
                         _program_key, uncertified, programs)
        if gone:
            await conn.execute(DELETE_STATE_ROWS, *_columns(gone, 3))
        if new_rows:
            await conn.copy_records_to_table("competency_states", records=new_rows, columns=STATE_COLUMNS)
        if uncertified or programs or counts:
            # Before the certification rows: their trigger writes the unit
            # series deltas, which a roster load writes under the exclusive
            # lock; taken after them, each waited for the other.
            await lock_roster_shared(conn)
        if uncertified:
            await conn.execute(DELETE_CERTIFICATIONS, *_columns(uncertified, 4))
        if programs:
            await conn.copy_records_to_table("competency_certifications", records=programs, columns=CERTIFICATION_COLUMNS)
        await apply_certification_changes(conn, counts)
        for key, _, after, _ in changed:
            self._pending[key] = after
        for key, _ in dropped:
            self._pending[key] = LearnerState(learner=key[1])

    async def rebuild(
        self,
        conn: asyncpg.Connection,
        pages: AsyncIterator[Sequence[tuple[int, str, str, bytes]]],
        *,
        connect: Connect | None = None,
    ) -> tuple[int, list[tuple[int, str, str]]]:
        """Fold the whole log in ``pages`` of (position, tenant, event type,
        payload) in memory (projections/competency/rebuild.py) and copy the
        result into the empty tables; returns the last position read and the
        events the rules failed on (position, tenant, error).  ``connect``
        opens another connection to the database, for forked workers that
        copy their share of the learners themselves.  The unit counts are
        left to :meth:`finish_rebuild`."""
        # Everything read stays referenced until its rows are written, so the
        # cyclic collector would only walk an ever larger heap: it is paused
        # while the log is read and folded (and resumed as it was after).
        collecting = gc.isenabled()
        gc.disable()
        try:
            return await self._rebuild(conn, pages, connect)
        finally:
            if collecting:
                gc.enable()

    async def _rebuild(
        self,
        conn: asyncpg.Connection,
        pages: AsyncIterator[Sequence[tuple[int, str, str, bytes]]],
        connect: Connect | None,
    ) -> tuple[int, list[tuple[int, str, str]]]:
        work = LogRebuild(self.catalog)
        # With another connection to open, every process may read the log
        # (read_shares.py); without, pages would be sent to workers, which
        # on two cores cost more than it saved: only processes beyond two read.
        readers = self.replay_readers if connect is not None else max(1, self.replay_processes - 2)
        position = await rebuild_learners(conn, work, pages, processes=self.replay_processes, readers=readers,
                                          connect=connect)
        await rebuild_roster(conn, position)
        if self.erased_in_totals == "drop":
            await rebuild_dropped(conn, position)
        return position, work.failed

    async def reset(self, conn: asyncpg.Connection) -> None:
        await conn.execute(TRUNCATE_ALL)
        # a truncate fires no row trigger: count the series deltas again from
        # what is left (the roster), or the certifications folded anew would
        # be added to deltas still holding the old ones
        await recompute_series(conn)

    async def digest(self, conn: asyncpg.Connection | asyncpg.Pool) -> str:
        return await digest(conn)

    async def finish_rebuild(self, conn: asyncpg.Connection) -> None:
        """On a replay's rebuilt tables, before they are swapped in: place the
        learners in the rebuilt roster's units, count the units again, and
        give the tables the series' triggers (which go with them to ``public``)."""
        await place_all(conn, datetime.now(timezone.utc))
        await recount_certified(conn)
        await recompute_series(conn, attach=True)
        # their statistics before they go live (the replay analysed them empty)
        await conn.execute(ANALYZE_FINISHED)
