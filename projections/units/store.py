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
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any, AsyncIterator, Callable, Iterable, Sequence

import asyncpg

from lrs.payload_codec import open_payload
from lrs.store import identities
from lrs.store.event_append import append_events
from lrs.store.learner_refs import seal_refs
from projections.units.erased import erased_learner
from projections.units.history import (
    ROSTER_EVENT,
    RosterFold,
    parse_roster_payload,
    plan_memberships,
    roster_payloads,
    sealed_of,
)
from projections.units.roster import Membership, Roster, RosterError, Unit, check_not_linked, check_roster

# Fixed key of the advisory lock between roster changes and count updates.
ROSTER_LOCK_KEY = 5_113_770_402_614_201

LOCK_EXCLUSIVE = "SELECT pg_advisory_xact_lock($1)"
LOCK_SHARED = "SELECT pg_advisory_xact_lock_shared($1)"
SELECT_UNITS = "SELECT unit_id, parent_id, kind, name FROM units WHERE tenant = $1 ORDER BY unit_id"
SELECT_UNIT = "SELECT unit_id, parent_id, kind, name FROM units WHERE tenant = $1 AND unit_id = $2"
UPSERT_UNITS = """
INSERT INTO units (tenant, unit_id, parent_id, kind, name)
SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[], $5::text[])
ON CONFLICT (tenant, unit_id) DO UPDATE SET parent_id = EXCLUDED.parent_id, kind = EXCLUDED.kind, name = EXCLUDED.name
"""
DELETE_TREE = "DELETE FROM unit_tree WHERE tenant = $1"
INSERT_TREE = """
INSERT INTO unit_tree (tenant, ancestor_id, unit_id, depth)
WITH RECURSIVE up (ancestor_id, unit_id, depth) AS (
    SELECT unit_id, unit_id, 0 FROM units WHERE tenant = $1
    UNION ALL
    SELECT u.parent_id, up.unit_id, up.depth + 1
    FROM up JOIN units u ON u.tenant = $1 AND u.unit_id = up.ancestor_id
    WHERE u.parent_id IS NOT NULL
)
SELECT $1, ancestor_id, unit_id, depth FROM up
"""
SELECT_CURRENT = """
SELECT learner, unit_id, valid_from, valid_to FROM roster_memberships
WHERE tenant = $1 AND learner = ANY($2::text[]) AND superseded_position IS NULL
"""
SUPERSEDE = """
UPDATE roster_memberships SET superseded_position = $2, superseded_at = $3
WHERE tenant = $1 AND superseded_position IS NULL
  AND (learner, valid_from) IN (SELECT * FROM unnest($4::text[], $5::timestamptz[]))
"""
MEMBERSHIP_COLUMNS = [
    "tenant", "learner", "unit_id", "valid_from", "valid_to", "recorded_position", "recorded_at",
    "superseded_position", "superseded_at",
]
SELECT_EVENT_WRITTEN = """
SELECT EXISTS (SELECT 1 FROM roster_memberships WHERE recorded_position = $1)
    OR EXISTS (SELECT 1 FROM roster_memberships WHERE superseded_position = $1)
"""
SELECT_CLOCK = "SELECT counted_at FROM roster_clock WHERE tenant = $1"
UPSERT_CLOCK = """
INSERT INTO roster_clock (tenant, counted_at) VALUES ($1, $2)
ON CONFLICT (tenant) DO UPDATE SET counted_at = GREATEST(roster_clock.counted_at, EXCLUDED.counted_at)
"""
SELECT_CROSSING = """
SELECT learner FROM roster_memberships
WHERE tenant = $1 AND valid_from > $2 AND valid_from <= $3 AND superseded_position IS NULL
UNION
SELECT learner FROM roster_memberships
WHERE tenant = $1 AND valid_to > $2 AND valid_to <= $3 AND superseded_position IS NULL
"""
SELECT_ANY_CROSSING = """
SELECT EXISTS (SELECT 1 FROM roster_memberships
               WHERE tenant = $1 AND valid_from > $2 AND valid_from <= $3 AND superseded_position IS NULL)
    OR EXISTS (SELECT 1 FROM roster_memberships
               WHERE tenant = $1 AND valid_to > $2 AND valid_to <= $3 AND superseded_position IS NULL)
"""
SELECT_WANTED = """
SELECT DISTINCT ON (learner) learner, unit_id FROM roster_memberships m
WHERE tenant = $1 AND learner = ANY($2::text[]) AND valid_from <= $3 AND (valid_to IS NULL OR valid_to > $3)
  AND superseded_position IS NULL
  AND NOT EXISTS (SELECT 1 FROM units_dropped_learners d WHERE d.tenant = m.tenant AND d.learner = m.learner)
ORDER BY learner, valid_from DESC
"""
# Erased learners left out of the totals (erased.py).
INSERT_DROPPED = """
INSERT INTO units_dropped_learners (tenant, learner, erased_position) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING
"""
SELECT_ERASURE_EVENTS = """
SELECT tenant, position, payload FROM events WHERE event_type = 'erasure' AND position <= $1 ORDER BY position
"""
SELECT_ALL_DROPPED = "SELECT 'dropped', tenant, learner FROM units_dropped_learners ORDER BY tenant{c}, learner{c}"
SELECT_PLACED = "SELECT learner, unit_id FROM learner_units WHERE tenant = $1 AND learner = ANY($2::text[])"
SELECT_EARNED = """
SELECT learner, program, program_version FROM competency_certifications
WHERE tenant = $1 AND earned AND learner = ANY($2::text[])
"""
DELETE_PLACED = "DELETE FROM learner_units WHERE tenant = $1 AND learner = ANY($2::text[])"
INSERT_PLACED = "INSERT INTO learner_units (tenant, learner, unit_id) SELECT $1, * FROM unnest($2::text[], $3::text[])"
ADD_HEADCOUNTS = """
INSERT INTO unit_headcounts (tenant, unit_id, headcount)
SELECT $1, * FROM unnest($2::text[], $3::bigint[])
ON CONFLICT (tenant, unit_id) DO UPDATE SET headcount = unit_headcounts.headcount + EXCLUDED.headcount
"""
ADD_CERTIFIED = """
INSERT INTO unit_certified (tenant, unit_id, program, program_version, certified)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[])
ON CONFLICT (tenant, unit_id, program, program_version)
DO UPDATE SET certified = unit_certified.certified + EXCLUDED.certified
"""
SELECT_UNITS_OF = """
SELECT tenant, learner, unit_id FROM learner_units
WHERE (tenant, learner) IN (SELECT * FROM unnest($1::text[], $2::text[]))
"""
RECOUNT_CERTIFIED = """
INSERT INTO unit_certified (tenant, unit_id, program, program_version, certified)
SELECT p.tenant, p.unit_id, c.program, c.program_version, count(*)
FROM learner_units p JOIN competency_certifications c ON c.tenant = p.tenant AND c.learner = p.learner
WHERE c.earned
GROUP BY p.tenant, p.unit_id, c.program, c.program_version
"""
SUM_HEADCOUNT = """
SELECT coalesce(sum(h.headcount), 0)::bigint FROM unit_tree t
JOIN unit_headcounts h ON h.tenant = t.tenant AND h.unit_id = t.unit_id
WHERE t.tenant = $1 AND t.ancestor_id = $2 AND ($3 OR t.depth = 0)
"""
SUM_CERTIFIED = """
SELECT coalesce(sum(c.certified), 0)::bigint FROM unit_tree t
JOIN unit_certified c ON c.tenant = t.tenant AND c.unit_id = t.unit_id
WHERE t.tenant = $1 AND t.ancestor_id = $2 AND ($3 OR t.depth = 0) AND c.program = $4 AND c.program_version = $5
"""
# Members at valid time $4 as the roster was known at $5 (recorded by then
# and not yet superseded).
SELECT_MEMBERS_AT = """
SELECT DISTINCT m.learner FROM unit_tree t
JOIN roster_memberships m ON m.tenant = t.tenant AND m.unit_id = t.unit_id
WHERE t.tenant = $1 AND t.ancestor_id = $2 AND ($3 OR t.depth = 0)
  AND m.valid_from <= $4 AND (m.valid_to IS NULL OR m.valid_to > $4)
  AND m.recorded_at <= $5 AND (m.superseded_at IS NULL OR m.superseded_at > $5)
  AND NOT EXISTS (SELECT 1 FROM units_dropped_learners d WHERE d.tenant = m.tenant AND d.learner = m.learner)
"""
SELECT_MEMBERSHIPS = """
SELECT learner, unit_id, valid_from, valid_to, recorded_position, recorded_at, superseded_position, superseded_at
FROM roster_memberships
WHERE tenant = $1 AND ($2::text IS NULL OR unit_id = $2) AND ($3::text IS NULL OR learner = $3)
  AND ($7 OR superseded_position IS NULL)
  AND (learner, valid_from, recorded_position) > ($4, $5, $8)
ORDER BY learner, valid_from, recorded_position LIMIT $6
"""
# Learners placed in the unit (and below it) at the clock, with their
# status in one programme: certified (earned), in_progress (a certification
# row: evidence towards it), not_started (no row); in learner order.
_UNIT_LEARNERS = """
SELECT p.learner, p.unit_id, c.earned, c.earned_at,
       CASE WHEN c.earned THEN 'certified' WHEN c.learner IS NOT NULL THEN 'in_progress' ELSE 'not_started' END AS status
FROM unit_tree t
JOIN learner_units p ON p.tenant = t.tenant AND p.unit_id = t.unit_id
LEFT JOIN competency_certifications c
  ON c.tenant = p.tenant AND c.learner = p.learner AND c.program = $4 AND c.program_version = $5
WHERE t.tenant = $1 AND t.ancestor_id = $2 AND ($3 OR t.depth = 0)
"""
SELECT_UNIT_LEARNERS = f"""
SELECT * FROM ({_UNIT_LEARNERS}) AS l WHERE status = ANY($6::text[]) AND learner > $7 ORDER BY learner LIMIT $8
"""
COUNT_UNIT_STATUSES = f"SELECT status, count(*) AS learners FROM ({_UNIT_LEARNERS}) AS l GROUP BY status"
SELECT_IS_ROSTERED = """
SELECT EXISTS (SELECT 1 FROM roster_memberships WHERE tenant = $1 AND learner = $2 AND superseded_position IS NULL)
"""
SELECT_DESCENDANTS = """
SELECT u.unit_id, u.parent_id, u.kind, u.name FROM unit_tree t JOIN units u ON u.tenant = t.tenant AND u.unit_id = t.unit_id
WHERE t.tenant = $1 AND t.ancestor_id = $2 ORDER BY t.depth, u.unit_id
"""
SELECT_ROSTER_TENANTS = "SELECT DISTINCT tenant FROM roster_memberships WHERE superseded_position IS NULL"
SELECT_CURRENT_LEARNERS = """
SELECT DISTINCT learner FROM roster_memberships WHERE tenant = $1 AND superseded_position IS NULL ORDER BY learner
"""
SELECT_ROSTER_EVENTS = """
SELECT position, stored, tenant, payload FROM events
WHERE event_type = 'roster' AND position <= $1 ORDER BY position
"""
SELECT_ROSTER_PAYLOADS = "SELECT payload FROM events WHERE position = ANY($1::bigint[]) AND event_type = 'roster'"
SELECT_ALL_UNITS = "SELECT 'unit', tenant, unit_id, parent_id, kind, name FROM units ORDER BY tenant{c}, unit_id{c}"
SELECT_ALL_MEMBERSHIPS = """
SELECT 'membership', tenant, learner, unit_id, valid_from, valid_to, recorded_position, superseded_position
FROM roster_memberships ORDER BY tenant{c}, learner{c}, valid_from, recorded_position
"""
SELECT_ALL_HEADCOUNTS = """
SELECT 'headcount', tenant, unit_id, headcount FROM unit_headcounts WHERE headcount <> 0 ORDER BY tenant{c}, unit_id{c}
"""
TREE_COUNTS = """
SELECT t.ancestor_id AS unit_id,
       coalesce(sum(h.headcount), 0)::bigint AS headcount,
       coalesce(sum(c.certified), 0)::bigint AS certified
FROM unit_tree t
LEFT JOIN unit_headcounts h ON h.tenant = t.tenant AND h.unit_id = t.unit_id
LEFT JOIN unit_certified c ON c.tenant = t.tenant AND c.unit_id = t.unit_id
     AND c.program = $2 AND c.program_version = $3
WHERE t.tenant = $1
GROUP BY t.ancestor_id
"""
SELECT_ANCESTORS = "SELECT ancestor_id FROM unit_tree WHERE tenant = $1 AND unit_id = $2 ORDER BY depth"
SERIES_RECOMPUTE = "SELECT series_recompute()"
SET_SERIES_BULK = "SET LOCAL lrs.series_bulk = 'on'"
SERIES_BULK_MEMBERSHIPS = 5000  # from this many memberships in one load, recompute once
# A load's rows reach the statistics only when autovacuum analyses them after
# the commit.  Into a fresh or small roster the planner had none for them, and
# took "learner = ANY(the event's 1,000 learners)" (10,000 when placing) to
# match most of the table: a scan of every row, tested against the array, once
# per event and per chunk.  A 100,000-learner load into a fresh database was
# quadratic (178-199 s; single statements of the placing 15-17 s; see
# bench/roster_load.py).  ANALYZE inside the transaction samples its own rows
# too and makes the plans that depend on the table be made again; a few times
# per load, as the table grows tenfold, it costs well under a second.
ANALYZE_MEMBERSHIPS = "ANALYZE roster_memberships"
ANALYZE_PLACED = "ANALYZE learner_units"
ANALYZE_AFTER_EVENTS = (0, 9, 99)  # after the events of 1,000, 10,000 and 100,000 learners
SELECT_ALL_COUNTS = """
SELECT tenant, unit_id, program, program_version, certified FROM unit_certified
WHERE certified <> 0 ORDER BY tenant{c}, unit_id{c}, program{c}, program_version{c}
"""

__all__ = [
    "LoadResult",
    "fetch_units",
    "fetch_unit",
    "load_roster",
    "advance_clock",
    "apply_certification_changes",
    "lock_roster_shared",
    "recount_certified",
    "unit_counts",
    "tree_counts",
    "members_at",
    "list_memberships",
    "sealed_learners",
    "certified_rows",
    "MembershipRow",
    "apply_roster_event",
    "drop_erased_learner",
    "rebuild_dropped",
    "place_all",
    "rebuild_roster",
    "roster_rows",
    "UnitLearner",
    "unit_learners",
    "unit_statuses",
    "is_rostered",
    "descendants",
    "ancestors",
]

Progress = Callable[[int, int], None]
CHUNK = 10_000


@dataclass(frozen=True, slots=True)
class UnitLearner:
    learner: str
    unit_id: str
    status: str  # certified | in_progress | not_started
    earned_at: datetime | None


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


async def fetch_units(conn: asyncpg.Connection | asyncpg.Pool, tenant: str) -> dict[str, Unit]:
    rows = await conn.fetch(SELECT_UNITS, tenant)
    return {r["unit_id"]: Unit(r["unit_id"], r["parent_id"], r["kind"], r["name"]) for r in rows}


async def fetch_unit(conn: asyncpg.Connection | asyncpg.Pool, tenant: str, unit_id: str) -> Unit | None:
    r = await conn.fetchrow(SELECT_UNIT, tenant, unit_id)
    return None if r is None else Unit(r["unit_id"], r["parent_id"], r["kind"], r["name"])


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


async def rebuild_dropped(conn: asyncpg.Connection, through: int) -> int:
    """Fill the (empty) units_dropped_learners table from the erasure events
    of the log up to ``through`` (a replay under policy ``drop``); the events read."""
    rows = {}
    for r in await conn.fetch(SELECT_ERASURE_EVENTS, through):
        rows.setdefault((r["tenant"], erased_learner(open_payload(r["payload"]))), r["position"])
    await conn.copy_records_to_table(
        "units_dropped_learners", records=[(t, l, p) for (t, l), p in rows.items()],
        columns=["tenant", "learner", "erased_position"],
    )
    return len(rows)


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


async def rebuild_roster(conn: asyncpg.Connection, through: int) -> int:
    """Fill the (empty) units, unit_tree and roster_memberships tables from
    the roster events of the log up to ``through``; the events read."""
    fold = RosterFold()
    count = 0
    for r in await conn.fetch(SELECT_ROSTER_EVENTS, through):  # (not in a transaction: no cursor)
        fold.add(r["position"], r["stored"], r["tenant"], open_payload(r["payload"]))
        count += 1
    await conn.copy_records_to_table("units", records=fold.unit_rows(), columns=["tenant", "unit_id", "parent_id", "kind", "name"])
    for tenant in sorted({t for t, _ in fold.units}):
        await conn.execute(INSERT_TREE, tenant)
    await conn.copy_records_to_table("roster_memberships", records=fold.membership_rows(), columns=MEMBERSHIP_COLUMNS)
    return count


async def roster_rows(conn: asyncpg.Connection, order: str) -> AsyncIterator[tuple[bytes, ...]]:
    """Units, memberships (with their history) and headcounts in key order,
    as text, for digests; ``order`` follows each text key (projections/byte_order.py)."""
    for query in (SELECT_ALL_UNITS, SELECT_ALL_MEMBERSHIPS, SELECT_ALL_HEADCOUNTS, SELECT_ALL_DROPPED):
        async for row in conn.cursor(query.format(c=order), prefetch=2000):
            yield tuple(b"" if v is None else str(v).encode() for v in row.values())


async def recount_certified(conn: asyncpg.Connection) -> None:
    """Count ``unit_certified`` again from the certifications (after a replay swap)."""
    await conn.execute(LOCK_EXCLUSIVE, ROSTER_LOCK_KEY)
    await conn.execute("DELETE FROM unit_certified")
    await conn.execute(RECOUNT_CERTIFIED)


async def unit_counts(
    conn: asyncpg.Connection, tenant: str, unit_id: str, program: str, version: str, descendants: bool
) -> tuple[int, int]:
    """(headcount, certified) of the unit (and its descendants) at the clock."""
    headcount = await conn.fetchval(SUM_HEADCOUNT, tenant, unit_id, descendants)
    certified = await conn.fetchval(SUM_CERTIFIED, tenant, unit_id, descendants, program, version)
    return int(headcount), int(certified)


async def tree_counts(
    conn: asyncpg.Connection, tenant: str, program: str, version: str
) -> dict[str, tuple[int, int]]:
    """(headcount, certified) of every unit with its descendants, at the clock:
    one pass over ``unit_tree`` (its cost grows with units, not learners)."""
    rows = await conn.fetch(TREE_COUNTS, tenant, program, version)
    return {r["unit_id"]: (int(r["headcount"]), int(r["certified"])) for r in rows}


async def members_at(
    conn: asyncpg.Connection, tenant: str, unit_id: str, descendants: bool, moment: datetime,
    known_at: datetime | None = None,
) -> list[str]:
    """Learners whose membership in the unit (or below it) covers ``moment``,
    as the roster was known at ``known_at`` (default: ``moment``)."""
    known = moment if known_at is None else known_at
    return [r["learner"] for r in await conn.fetch(SELECT_MEMBERS_AT, tenant, unit_id, descendants, moment, known)]


@dataclass(frozen=True, slots=True)
class MembershipRow:
    membership: Membership
    recorded_position: int
    recorded_at: datetime
    superseded_position: int | None
    superseded_at: datetime | None


async def list_memberships(
    conn: asyncpg.Connection | asyncpg.Pool,
    tenant: str,
    *,
    unit_id: str | None = None,
    learner: str | None = None,
    after: tuple[str, datetime, int] | None = None,
    limit: int = 1000,
    history: bool = False,
) -> list[MembershipRow]:
    """Memberships by (learner, valid_from, recorded position): the current
    ones, or with ``history`` the superseded ones too."""
    start = after or ("", datetime.min.replace(tzinfo=timezone.utc), -1)
    rows = await conn.fetch(SELECT_MEMBERSHIPS, tenant, unit_id, learner, start[0], start[1], limit, history, start[2])
    return [
        MembershipRow(
            Membership(r["learner"], r["unit_id"], r["valid_from"], r["valid_to"]),
            r["recorded_position"], r["recorded_at"], r["superseded_position"], r["superseded_at"],
        )
        for r in rows
    ]


async def sealed_learners(conn: asyncpg.Connection | asyncpg.Pool, rows: Sequence[MembershipRow]) -> dict[str, str]:
    """Pseudonym key -> sealed clear key of the learners of ``rows``, from
    the roster events that recorded them (history.py; none when the roster
    was not sealed)."""
    positions = sorted({r.recorded_position for r in rows if r.recorded_position > 0})
    wanted = {r.membership.learner for r in rows}
    sealed: dict[str, str] = {}
    for r in await conn.fetch(SELECT_ROSTER_PAYLOADS, positions):
        for learner, text in sealed_of(open_payload(r["payload"])).items():
            if learner in wanted:
                sealed[learner] = text
    return sealed


async def certified_rows(conn: asyncpg.Connection | asyncpg.Pool, order: str) -> list[asyncpg.Record]:
    """Every non-zero count, in key order (for digests; ``order`` follows
    each text key: projections/byte_order.py)."""
    return await conn.fetch(SELECT_ALL_COUNTS.format(c=order))



async def unit_learners(
    conn: asyncpg.Connection, tenant: str, unit_id: str, program: str, version: str, descendants: bool,
    statuses: Sequence[str], after: str, limit: int,
) -> list[UnitLearner]:
    """Learners in the unit at the clock whose status is one of ``statuses``,
    after ``after`` in learner order, at most ``limit``."""
    rows = await conn.fetch(
        SELECT_UNIT_LEARNERS, tenant, unit_id, descendants, program, version, list(statuses), after, limit
    )
    return [UnitLearner(r["learner"], r["unit_id"], r["status"], r["earned_at"]) for r in rows]


async def unit_statuses(
    conn: asyncpg.Connection, tenant: str, unit_id: str, program: str, version: str, descendants: bool
) -> dict[str, int]:
    """How many learners of the unit at the clock have each status."""
    rows = await conn.fetch(COUNT_UNIT_STATUSES, tenant, unit_id, descendants, program, version)
    return {r["status"]: int(r["learners"]) for r in rows}


async def is_rostered(conn: asyncpg.Connection | asyncpg.Pool, tenant: str, learner: str) -> bool:
    """The learner has (or had) a membership in some unit."""
    return bool(await conn.fetchval(SELECT_IS_ROSTERED, tenant, learner))


async def descendants(conn: asyncpg.Connection | asyncpg.Pool, tenant: str, unit_id: str) -> list[Unit]:
    """The unit and every unit below it, nearest first."""
    rows = await conn.fetch(SELECT_DESCENDANTS, tenant, unit_id)
    return [Unit(r["unit_id"], r["parent_id"], r["kind"], r["name"]) for r in rows]


async def ancestors(conn: asyncpg.Connection | asyncpg.Pool, tenant: str, unit_id: str) -> list[str]:
    """The unit's id, then its parent's, up to the root."""
    return [r["ancestor_id"] for r in await conn.fetch(SELECT_ANCESTORS, tenant, unit_id)]

