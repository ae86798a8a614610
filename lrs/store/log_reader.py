"""Reading the event log in position order, for the relay and for replay.

Positions are assigned in commit order and without gaps, so reading
``position > last`` never skips an event that commits later.
"""

from __future__ import annotations

from typing import AsyncIterator

import asyncpg

from lrs.eventlog import EventRecord
from lrs.payload_codec import DamagedPayload, open_payload

SELECT_AFTER = """
SELECT position, event_id, tenant, event_type, statement_id, stored, payload, prev_hash, hash
FROM events WHERE position > $1 ORDER BY position LIMIT $2
"""
SELECT_LAST_POSITION = "SELECT position FROM log_head WHERE singleton"
SELECT_HEAD = "SELECT position, hash FROM log_head WHERE singleton"
SELECT_HASH_AT = "SELECT hash FROM events WHERE position = $1"
SELECT_HASHES_AT = "SELECT position, hash FROM events WHERE position = ANY($1::bigint[])"
SELECT_HASHES_BETWEEN = "SELECT position, hash FROM events WHERE position BETWEEN $1 AND $2"

Pool = asyncpg.Pool | asyncpg.Connection


def _record(row: asyncpg.Record) -> EventRecord:
    # By position, in SELECT_AFTER's order (EventRecord's fields): nine
    # lookups by name cost the relay about 0.4 µs an event more
    # (bench/relay_pieces.py, "rows to records").
    position, event_id, tenant, event_type, statement_id, stored, payload, prev_hash, hash_ = row
    return EventRecord(
        position, event_id, tenant, event_type, statement_id, stored, row_payload(payload), prev_hash, hash_,
    )


def row_payload(stored: bytes) -> bytes:
    """The canonical JSON of a row's payload.  A damaged frame is an altered
    row: its stored bytes are given as they are, which do not hash to the
    event's hash, so verifying the chain reports its position (and a
    consumer refuses the event) instead of stopping on it.  An unknown
    dictionary still raises: the row may be intact, read by an older lrs."""
    try:
        return open_payload(stored)
    except DamagedPayload:
        return stored


async def read_events_after(pool: Pool, position: int, limit: int) -> list[EventRecord]:
    """Up to ``limit`` events with positions above ``position``, in order."""
    rows = await pool.fetch(SELECT_AFTER, position, limit)
    return [_record(row) for row in rows]


async def last_position(pool: Pool) -> int:
    """The position of the last committed event (0 when the log is empty)."""
    return await pool.fetchval(SELECT_LAST_POSITION)


async def head(pool: Pool) -> tuple[int, bytes]:
    """(position, hash) of the log head."""
    row = await pool.fetchrow(SELECT_HEAD)
    return int(row["position"]), bytes(row["hash"])


async def hash_at(pool: Pool, position: int) -> bytes | None:
    """The hash of the event at ``position`` (for verifying from a midpoint)."""
    return await pool.fetchval(SELECT_HASH_AT, position)


async def hashes_at(pool: Pool, positions: list[int]) -> dict[int, bytes]:
    """position -> hash of the events at ``positions`` (sorted) that are in
    the log.  A dense run (the usual batch of consecutive messages) is read
    as one range, cheaper than looking up each position."""
    if not positions:
        return {}
    low, high = positions[0], positions[-1]
    if high - low < 2 * len(positions):
        rows = await pool.fetch(SELECT_HASHES_BETWEEN, low, high)
        wanted = set(positions)
        return {row["position"]: bytes(row["hash"]) for row in rows if row["position"] in wanted}
    rows = await pool.fetch(SELECT_HASHES_AT, positions)
    return {row["position"]: bytes(row["hash"]) for row in rows}


async def iter_events(
    pool: Pool, after: int = 0, batch_size: int = 1000
) -> AsyncIterator[EventRecord]:
    """Every event after ``after`` up to the end of the log, in order."""
    position = after
    while True:
        batch = await read_events_after(pool, position, batch_size)
        for record in batch:
            yield record
        if len(batch) < batch_size:
            return
        position = batch[-1].position
