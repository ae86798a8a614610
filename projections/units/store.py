"""Units, roster memberships and certification counts in Postgres (migrations/0101_units.sql).

How "share of unit U certified" stays cheap at national scale: the counts are
materialised per unit, for the roster as it stands at ``roster_clock.counted_at``:

- ``learner_units`` places each learner in the unit whose membership covers
  ``counted_at``; ``unit_headcounts`` counts them per unit (the denominator
  comes from the roster, never from the actors seen in statements);
- ``unit_certified`` counts, per unit and programme, those whose
  certification is earned.  The competency projection changes it in the
  transaction that changes a learner's state, and only when a certification
  is earned or lost (:func:`apply_certification_changes`);
- loading a roster, and reading a summary, first moves ``counted_at`` to the
  present, re-placing only the learners whose memberships start or end in
  between (an index range), so the wall clock never has to be folded in;
- a summary of U with its descendants sums the rows of the units below U
  (``unit_tree`` is the closure of the hierarchy): its cost grows with the
  number of units, not learners.

Concurrency: roster changes take an exclusive advisory lock, the
projection's count updates a shared one, so a learner is never moved between
units while its certification changes.  The lock comes first: a transaction
takes it before it writes any row the other side writes too, else each can
hold what the other waits for ("deadlock detected").  A roster load takes it
as its first act; the projection before it changes a certification row
(:func:`lock_roster_shared`), whose trigger writes the unit series deltas
that a roster load writes too (0114_series_deltas.sql).

This module writes: roster loads and events, the placing of learners at the
clock, the certification counts.  The reads are :mod:`projections.units.reads`,
the rebuild from the log and the digest rows :mod:`projections.units.rebuild`,
the statements :mod:`projections.units.sql`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Callable, Iterable, Sequence

import asyncpg

from lrs.store import identities
from lrs.store.event_append import append_events
from lrs.store.learner_refs import seal_refs
from projections.units.history import ROSTER_EVENT, parse_roster_payload, plan_memberships, roster_payloads
from projections.units.reads import fetch_units
from projections.units.roster import Membership, Roster, RosterError, check_not_linked, check_roster
from projections.units.sql import (
    ADD_CERTIFIED, ADD_HEADCOUNTS, ANALYZE_MEMBERSHIPS, ANALYZE_PLACED, DELETE_PLACED, DELETE_TREE, INSERT_DROPPED,
    INSERT_PLACED, INSERT_TREE, LOCK_EXCLUSIVE, LOCK_SHARED, MEMBERSHIP_COLUMNS, RECOUNT_CERTIFIED, SELECT_ANY_CROSSING,
    SELECT_CLOCK, SELECT_CROSSING, SELECT_CURRENT, SELECT_CURRENT_LEARNERS, SELECT_EARNED, SELECT_EVENT_WRITTEN,
    SELECT_PLACED, SELECT_ROSTER_TENANTS, SELECT_UNITS_OF, SELECT_WANTED, SERIES_RECOMPUTE, SET_SERIES_BULK, SUPERSEDE,
    UPSERT_CLOCK, UPSERT_UNITS,
)

__all__ = [
    "LoadResult",
    "Placements",
    "advance_clock",
    "apply_certification_changes",
    "apply_roster_event",
    "drop_erased_learner",
    "load_roster",
    "lock_roster_shared",
    "place_all",
    "placements",
    "recount_certified",
]

# Fixed key of the advisory lock between roster changes and count updates.
ROSTER_LOCK_KEY = 5_113_770_402_614_201
SERIES_BULK_MEMBERSHIPS = 5000  # from this many memberships in one load, recompute once
ANALYZE_AFTER_EVENTS = (0, 9, 99)  # after the events of 1,000, 10,000 and 100,000 learners
Progress = Callable[[int, int], None]
CHUNK = 10_000


@dataclass(frozen=True, slots=True)
class LoadResult:
    units: int
    memberships: int
    learners: int
    moved: int  # learners placed in another unit than before
    counted_at: datetime
    position: int  # the last roster event appended
    joined: int = 0  # learners in no unit before, in one now (a first load: every learner it places)
    left: int = 0  # learners in a unit before, in none now


@dataclass(frozen=True, slots=True)
class Placements:
    """How a load changed where learners are counted: each learner re-placed
    is in exactly one of these."""

    joined: int = 0
    moved: int = 0
    left: int = 0

    def __add__(self, other: "Placements") -> "Placements":
        return Placements(self.joined + other.joined, self.moved + other.moved, self.left + other.left)


def placements(moves: Iterable[tuple[str | None, str | None]]) -> Placements:
    """(unit before, unit now) of each learner whose unit changed (None: in
    none) counted as joined, moved or left."""
    joined = moved = left = 0
    for old, new in moves:
        if old is None and new is not None:
            joined += 1
        elif old is not None and new is None:
            left += 1
        elif old != new:
            moved += 1
    return Placements(joined, moved, left)


async def load_roster(
    pool: asyncpg.Pool, tenant: str, roster: Roster, *, now: datetime, progress: Progress | None = None,
    learner_keys: Any = None,
) -> LoadResult:
    """Validate ``roster`` against the loaded units, record it as ``roster``
    events of the log and apply them, in one transaction.

    Units are inserted or updated by id (never deleted).  For every learner
    the roster names, its memberships replace that learner's timeline from
    their earliest ``valid_from`` on; nothing is deleted (history.py).  The
    counts are moved to ``now``.  ``learner_keys``: personal data is sealed
    (docs/privacy.md), learners are recorded by pseudonym key, their clear
    keys sealed.  Raises RosterError (naming learners as given)."""
    if learner_keys is None:
        return await _load_roster(pool, tenant, roster, now, progress, None)
    refs = await seal_refs(learner_keys, tenant, [m.learner for m in roster.memberships])
    sealed = Roster(roster.units, tuple(replace(m, learner=refs.key(m.learner)) for m in roster.memberships))
    try:
        return await _load_roster(pool, tenant, sealed, now, progress, refs.sealed)
    except RosterError as exc:
        raise RosterError([refs.reveal(problem) for problem in exc.problems]) from None


async def _load_roster(
    pool: asyncpg.Pool, tenant: str, roster: Roster, now: datetime, progress: Progress | None,
    sealed: dict[str, str] | None,
) -> LoadResult:
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(LOCK_EXCLUSIVE, ROSTER_LOCK_KEY)
        check_roster(roster, await fetch_units(conn, tenant))
        learners = sorted({m.learner for m in roster.memberships})
        await identities.lock_links(conn)  # no link of these learners until the load commits
        check_not_linked(roster, await identities.linked_owners(conn, tenant, learners))
        total = len(roster.units) + len(roster.memberships)
        payloads = roster_payloads(roster, sealed)
        bulk = len(roster.memberships) >= SERIES_BULK_MEMBERSHIPS
        if bulk:  # the series deltas are counted once at the end, not row by row
            await conn.execute(SET_SERIES_BULK)
        # the log head is locked from here to the commit: ingest waits
        appended = await append_events(conn, tenant, ROSTER_EVENT, payloads, clock=lambda: now)
        done = 0
        for index, ((position, stored), payload) in enumerate(zip(appended, payloads)):
            part = parse_roster_payload(payload)
            await _apply_load(conn, tenant, part, position, stored, recompute=not bulk)
            if index in ANALYZE_AFTER_EVENTS and index + 1 < len(payloads):
                await conn.execute(ANALYZE_MEMBERSHIPS)
            done += len(part.units) + len(part.memberships)
            if progress:
                progress(done, total)
        if bulk:
            await conn.execute(SERIES_RECOMPUTE)
        counted_at, placed = await _advance(conn, tenant, now, learners)
        if progress:
            progress(total, total)
        return LoadResult(
            len(roster.units), len(roster.memberships), len(learners), placed.moved, counted_at, appended[-1][0],
            joined=placed.joined, left=placed.left,
        )


async def _apply_load(
    conn: asyncpg.Connection, tenant: str, roster: Roster, position: int, stored: datetime, *, recompute: bool = True
) -> None:
    """Write what one roster event records: its units, and the memberships it
    supersedes and records (history.plan_memberships).  ``recompute=False``:
    the caller recomputes the series itself (a bulk load, at its end)."""
    if roster.units:
        units = roster.units
        await conn.execute(
            UPSERT_UNITS, tenant, [u.unit_id for u in units], [u.parent_id for u in units],
            [u.kind for u in units], [u.name for u in units],
        )
        await conn.execute(DELETE_TREE, tenant)
        await conn.execute(INSERT_TREE, tenant)
    learners = sorted({m.learner for m in roster.memberships})
    if learners:
        await _apply_memberships(conn, tenant, roster, learners, position, stored)
    if roster.units and recompute:  # the tree may have changed under existing memberships
        await conn.execute(SERIES_RECOMPUTE)


async def _apply_memberships(
    conn: asyncpg.Connection, tenant: str, roster: Roster, learners: list[str], position: int, stored: datetime
) -> None:
    current: dict[str, list[Membership]] = {}
    for r in await conn.fetch(SELECT_CURRENT, tenant, learners):
        current.setdefault(r["learner"], []).append(Membership(r["learner"], r["unit_id"], r["valid_from"], r["valid_to"]))
    superseded, recorded = plan_memberships(current, roster)
    if superseded:
        await conn.execute(
            SUPERSEDE, tenant, position, stored, [m.learner for m in superseded], [m.valid_from for m in superseded]
        )
    if recorded:
        await conn.copy_records_to_table(
            "roster_memberships",
            records=[(tenant, m.learner, m.unit_id, m.valid_from, m.valid_to, position, stored, None, None) for m in recorded],
            columns=MEMBERSHIP_COLUMNS,
        )


async def apply_roster_event(conn: asyncpg.Connection, tenant: str, position: int, payload: bytes) -> bool:
    """Apply a roster event met in the log unless its rows are written
    already (the load wrote them as it appended it; a replay's tables do not
    have them yet).  An event that changed no membership changes nothing
    when applied again, so "no row names it" is a safe test.  True when applied."""
    if await conn.fetchval(SELECT_EVENT_WRITTEN, position):
        return False
    stored = await conn.fetchval("SELECT stored FROM events WHERE position = $1", position)
    await lock_roster_shared(conn)
    await _apply_load(conn, tenant, parse_roster_payload(payload), position, stored)
    return True


async def drop_erased_learner(conn: asyncpg.Connection, tenant: str, learner: str, position: int) -> None:
    """An erased learner leaves the unit totals (erased.py, policy ``drop``):
    recorded, and taken out of their unit at the clock; inside the
    projection's transaction.  Applying it again changes nothing."""
    await lock_roster_shared(conn)
    await conn.execute(INSERT_DROPPED, tenant, learner, position)
    counted_at = await conn.fetchval(SELECT_CLOCK, tenant)
    if counted_at is not None:
        await _place(conn, tenant, [learner], counted_at)


async def advance_clock(pool: asyncpg.Pool, tenant: str, now: datetime) -> datetime | None:
    """Move the tenant's counts to ``now`` when a membership started or ended
    since they were counted; the moment the counts describe (None: no roster)."""
    async with pool.acquire() as conn:
        counted_at = await conn.fetchval(SELECT_CLOCK, tenant)
        if counted_at is None or counted_at >= now:
            return counted_at
        if not await conn.fetchval(SELECT_ANY_CROSSING, tenant, counted_at, now):
            return now  # nothing starts or ends in between: the counts hold at `now` too
        async with conn.transaction():
            await conn.execute(LOCK_EXCLUSIVE, ROSTER_LOCK_KEY)
            counted_at, _ = await _advance(conn, tenant, now, [])
            return counted_at


async def _advance(
    conn: asyncpg.Connection, tenant: str, now: datetime, learners: Sequence[str]
) -> tuple[datetime, Placements]:
    """Re-place ``learners`` and everyone whose membership starts or ends
    between the clock and ``now``; the clock becomes ``now`` (never goes back)."""
    counted_at = await conn.fetchval(SELECT_CLOCK, tenant)
    when = now if counted_at is None or counted_at < now else counted_at
    affected = set(learners)
    if counted_at is not None and counted_at < when:
        affected.update(r["learner"] for r in await conn.fetch(SELECT_CROSSING, tenant, counted_at, when))
    moved = Placements()
    ordered = sorted(affected)
    for start in range(0, len(ordered), CHUNK):
        moved += await _place(conn, tenant, ordered[start : start + CHUNK], when)
        if start == 0 and len(ordered) > CHUNK:  # the first chunk's places into the statistics
            await conn.execute(ANALYZE_PLACED)
    await conn.execute(UPSERT_CLOCK, tenant, when)
    return when, moved


async def _place(conn: asyncpg.Connection, tenant: str, learners: list[str], at: datetime) -> Placements:
    wanted = {r["learner"]: r["unit_id"] for r in await conn.fetch(SELECT_WANTED, tenant, learners, at)}
    placed = {r["learner"]: r["unit_id"] for r in await conn.fetch(SELECT_PLACED, tenant, learners)}
    moves = [(l, placed.get(l), wanted.get(l)) for l in learners if placed.get(l) != wanted.get(l)]
    if not moves:
        return Placements()
    moved = [l for l, _, _ in moves]
    heads: Counter[str] = Counter()
    for _, old, new in moves:
        if old is not None:
            heads[old] -= 1
        if new is not None:
            heads[new] += 1
    certified: Counter[tuple[str, str, str]] = Counter()
    origin = {l: (old, new) for l, old, new in moves}
    for r in await conn.fetch(SELECT_EARNED, tenant, moved):
        old, new = origin[r["learner"]]
        if old is not None:
            certified[(old, r["program"], r["program_version"])] -= 1
        if new is not None:
            certified[(new, r["program"], r["program_version"])] += 1
    await conn.execute(DELETE_PLACED, tenant, moved)
    kept = [(l, new) for l, _, new in moves if new is not None]
    if kept:
        await conn.execute(INSERT_PLACED, tenant, [l for l, _ in kept], [u for _, u in kept])
    heads = Counter({k: v for k, v in heads.items() if v})
    if heads:
        await conn.execute(ADD_HEADCOUNTS, tenant, list(heads), list(heads.values()))
    await _add_certified(conn, [(tenant, *key, delta) for key, delta in certified.items()])
    return placements((old, new) for _, old, new in moves)


async def _add_certified(conn: asyncpg.Connection, rows: Iterable[tuple[str, str, str, str, int]]) -> None:
    rows = [r for r in rows if r[4]]
    if rows:
        await conn.execute(ADD_CERTIFIED, *(list(column) for column in zip(*rows)))


async def lock_roster_shared(conn: asyncpg.Connection) -> None:
    """Hold roster changes off until the caller's transaction ends; taken
    before the projection writes a row a roster load writes too (taking it
    again in the same transaction is harmless)."""
    await conn.execute(LOCK_SHARED, ROSTER_LOCK_KEY)


async def apply_certification_changes(
    conn: asyncpg.Connection, changes: Sequence[tuple[str, str, str, str, int]]
) -> None:
    """``changes`` are (tenant, learner, program, program_version, +1 earned / -1 lost),
    applied to the units the learners are in; inside the projection's transaction."""
    if not changes:
        return
    await lock_roster_shared(conn)
    pairs = sorted({(t, l) for t, l, *_ in changes})
    rows = await conn.fetch(SELECT_UNITS_OF, [t for t, _ in pairs], [l for _, l in pairs])
    unit_of = {(r["tenant"], r["learner"]): r["unit_id"] for r in rows}
    deltas: Counter[tuple[str, str, str, str]] = Counter()
    for tenant, learner, program, version, delta in changes:
        unit = unit_of.get((tenant, learner))
        if unit is not None:
            deltas[(tenant, unit, program, version)] += delta
    await _add_certified(conn, [(*key, delta) for key, delta in sorted(deltas.items())])


async def place_all(conn: asyncpg.Connection, now: datetime) -> None:
    """Place every learner again from the current memberships, at ``now``
    (after a replay swapped a roster rebuilt from the log in)."""
    await conn.execute(LOCK_EXCLUSIVE, ROSTER_LOCK_KEY)
    await conn.execute("DELETE FROM learner_units")
    await conn.execute("DELETE FROM unit_headcounts")
    await conn.execute("DELETE FROM roster_clock")
    for tenant in [r["tenant"] for r in await conn.fetch(SELECT_ROSTER_TENANTS)]:
        learners = [r["learner"] for r in await conn.fetch(SELECT_CURRENT_LEARNERS, tenant)]
        await _advance(conn, tenant, now, learners)


async def recount_certified(conn: asyncpg.Connection) -> None:
    """Count ``unit_certified`` again from the certifications (after a replay swap)."""
    await conn.execute(LOCK_EXCLUSIVE, ROSTER_LOCK_KEY)
    await conn.execute("DELETE FROM unit_certified")
    await conn.execute(RECOUNT_CERTIFIED)
