"""The activity + verb pair keys of Statements stored before migration 0141.

Migration 0141 recorded the log head as the low-water (``pair_keys_low_water``):
every Statement above it has its pair keys (the writer gives them), and pages
of activity + verb walk the activity's entries, the verb checked on each row,
at or below it (:func:`lrs.store.page_query._split_matches`).  :func:`backfill_pair_keys` gives
the older Statements their keys, newest first, a range of positions at a
time, and lowers the low-water past each range in the same transaction: the
pair keys of the Statement itself (:func:`lrs.ingest.stored_keys.pair_keys`)
and, for a Statement whose Object is a StatementRef, those of every
Statement its chain reaches (up to MAX_REF_DEPTH targets, as
:mod:`lrs.store.ref_keys` gives them).  A target stored after the range's
read is the writer's to add (its REFERRED check gives the referrer the
target's keys, pair key included).

The keys are computed from the payloads outside any lock; the rows are
written under the log head lock (as the writer writes its referrers' keys),
so that a row is never written twice by the writer and this at once.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import asyncpg
import msgspec

from lrs.ingest.stored_keys import pair_keys, statement_ref_target
from lrs.payload_codec import open_payload
from lrs.store.ref_keys import INSERT_REACHED_KEYS, MAX_REF_DEPTH

__all__ = ["LowWaterMoved", "PairKeysEverywhere", "backfill_pair_keys", "low_water"]

SELECT_LOW_WATER = "SELECT position FROM pair_keys_low_water WHERE singleton"
# The Statements of a range of positions, by the events' primary key.
SELECT_RANGE = """
SELECT e.position, e.tenant, e.payload FROM events e
WHERE e.position > $1 AND e.position <= $2 AND e.event_type = 'statement'
"""
SELECT_TARGET = """
SELECT (SELECT e.payload FROM events e WHERE e.position = s.position) AS payload
FROM statements s WHERE s.tenant = $1 AND s.statement_id = $2
"""
LOCK_HEAD = "SELECT position FROM log_head WHERE singleton FOR UPDATE"
LOWER = "UPDATE pair_keys_low_water SET position = $2 WHERE singleton AND position = $1"

_decode = msgspec.json.Decoder().decode


async def low_water(pool: asyncpg.Pool | asyncpg.Connection) -> int | None:
    """The position at and below which Statements may lack their pair keys
    (None: no low-water recorded, nor its table: migration 0141 never ran)."""
    try:
        return await pool.fetchval(SELECT_LOW_WATER)
    except asyncpg.UndefinedTableError:
        return None


class PairKeysEverywhere:
    """Whether every Statement of the database has its pair keys: the
    low-water at 0 (a store migrated before its first Statement, or
    backfilled).  While that is seen, an activity + verb page walks the
    pair key alone (lrs/store/page_query.py), without the split at the
    low-water whose plan cost PostgreSQL about twice an activity page's
    CPU.  The low-water is read again at most every ``recheck_s`` seconds,
    whether it was 0 or not: a backfill running beside the service lowers
    it, and a database restored under the running service from a backup
    taken before its backfill ended raises it again (its older Statements
    lack the key: walked alone, the pair key would miss them for as long as
    the process runs; now for at most ``recheck_s``).  One per process and
    database."""

    def __init__(self, recheck_s: float = 30.0) -> None:
        self.seen = False
        self._recheck_s = recheck_s
        self._checked = -math.inf

    async def everywhere(self, pool: asyncpg.Pool | asyncpg.Connection) -> bool:
        now = time.monotonic()
        if now - self._checked >= self._recheck_s:
            self._checked = now
            self.seen = await low_water(pool) == 0
        return self.seen


async def _range_keys(conn: asyncpg.Connection, low: int, high: int) -> list[tuple[str, int, str]]:
    """(tenant, position, pair key) of every Statement in (low, high]: its own
    and those of the Statements its StatementRef chain reaches."""
    rows: list[tuple[str, int, str]] = []
    for row in await conn.fetch(SELECT_RANGE, low, high):
        tenant, position = row["tenant"], row["position"]
        body = _decode(open_payload(row["payload"]))
        keys = set(pair_keys(body))
        target = statement_ref_target(body)
        for _ in range(MAX_REF_DEPTH):
            if target is None:
                break
            stored = await conn.fetchval(SELECT_TARGET, tenant, target)
            if stored is None:
                break
            body = _decode(open_payload(stored))
            keys |= pair_keys(body)
            target = statement_ref_target(body)
        rows += [(tenant, position, key) for key in sorted(keys)]
    return rows


class LowWaterMoved(RuntimeError):
    """Another backfill lowered the low-water meanwhile (this step's rows
    were rolled back; the store is correct and a new run goes on)."""


async def backfill_pair_keys(
    pool: asyncpg.Pool, *, batch: int = 5000, progress: Callable[[int, int], None] | None = None,
) -> int:
    """Give the Statements at or below the low-water their pair keys, ``batch``
    positions a step from the low-water down, lowering it after each step;
    returns the number of rows written.  ``progress(done, total)``: positions
    covered so far of the low-water's at the start."""
    if batch < 1:
        raise ValueError("batch must be at least 1")
    start = await low_water(pool)
    if start is None:
        raise LookupError("no pair-key low-water recorded (run the migrations first)")
    high, written = start, 0
    while high > 0:
        low = max(0, high - batch)
        async with pool.acquire() as conn:
            keys = await _range_keys(conn, low, high)
            async with conn.transaction():
                await conn.fetchval(LOCK_HEAD)
                if keys:
                    status = await conn.execute(INSERT_REACHED_KEYS, *(list(column) for column in zip(*keys)))
                    written += int(status.split()[-1])
                if await conn.execute(LOWER, high, low) != "UPDATE 1":
                    raise LowWaterMoved("the pair-key low-water moved while this backfill lowered it:"
                                        " another backfill ran at the same time; run it again")
        high = low
        if progress is not None:
            progress(start - high, start)
    return written
