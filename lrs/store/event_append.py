"""Appending low-volume events (roster and identity changes) to the log.

The caller's transaction takes the single ``log_head`` row FOR UPDATE (the
lock every writer of the log takes: positions stay gapless and in commit
order), appends one event per payload hash-chained after the head, and moves
the head; whatever it writes after that in the same transaction commits
with the events or not at all.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Callable, Sequence

import asyncpg

from lrs.eventlog import ONE_MICROSECOND, event_hash
from lrs.store.ids import TimeOrderedUuids

__all__ = ["Appended", "append_events"]

SELECT_HEAD_FOR_UPDATE = "SELECT position, hash, stored FROM log_head WHERE singleton FOR UPDATE"
UPDATE_HEAD = "UPDATE log_head SET position = $1, hash = $2, stored = $3 WHERE singleton"
INSERT_EVENT = """
INSERT INTO events (position, event_id, tenant, event_type, statement_id, stored, payload, prev_hash, hash)
VALUES ($1, $2, $3, $4, NULL, $5, $6, $7, $8)
"""

Appended = tuple[int, datetime]  # (position, stored)
_EVENT_IDS = TimeOrderedUuids()


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


async def append_events(
    conn: asyncpg.Connection,
    tenant: str,
    event_type: str,
    payloads: Sequence[bytes],
    *,
    clock: Callable[[], datetime] = _utc_now,
    new_event_id: Callable[[], uuid.UUID] = _EVENT_IDS,
) -> list[Appended]:
    """Inside the caller's transaction: lock the head, append one event of
    ``event_type`` per payload, move the head; their (position, stored)."""
    head = await conn.fetchrow(SELECT_HEAD_FOR_UPDATE)
    position, prev_hash, last_stored = head["position"], head["hash"], head["stored"]
    now = clock()
    appended: list[Appended] = []
    for payload in payloads:
        position += 1
        stored = now if last_stored is None or now > last_stored else last_stored + ONE_MICROSECOND
        event_id = new_event_id()
        digest = event_hash(prev_hash, position, event_id, tenant, event_type, stored, payload)
        # Kept as JSON, never compressed (lrs/payload_codec.py): these events are
        # few, and erasure searches the roster and identity ones in SQL.
        await conn.execute(INSERT_EVENT, position, event_id, tenant, event_type, stored, payload, prev_hash, digest)
        appended.append((position, stored))
        prev_hash, last_stored = digest, stored
    await conn.execute(UPDATE_HEAD, position, prev_hash, last_stored)
    return appended
