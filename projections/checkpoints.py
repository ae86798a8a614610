"""A projection's bookkeeping in PostgreSQL: its checkpoint (the last log
position applied, with the rule version and frameworks the state was built
with), the events that failed and are being retried, and the events it
parked.  Shared by the runner (projections/runner.py) and the replay
(projections/replay.py); every write happens in the caller's transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Iterable

import asyncpg

from projections.contract import Projection, ProjectionOutdated

__all__ = ["CheckpointStore", "ParkedEvent", "checkpoint_position", "parked_count", "parked_events"]

SELECT_CHECKPOINT = """
SELECT position, rule_version, catalog_digest, rebuilds FROM projection_checkpoints WHERE name = $1 FOR UPDATE
"""
INSERT_CHECKPOINT = """
INSERT INTO projection_checkpoints (name, position, rule_version, catalog_digest) VALUES ($1, $2, $3, $4)
ON CONFLICT (name) DO NOTHING
"""
UPSERT_CHECKPOINT = """
INSERT INTO projection_checkpoints (name, position, rule_version, catalog_digest, updated_at)
VALUES ($1, $2, $3, $4, now())
ON CONFLICT (name) DO UPDATE SET position = EXCLUDED.position, rule_version = EXCLUDED.rule_version,
    catalog_digest = EXCLUDED.catalog_digest, updated_at = now(), rebuilds = projection_checkpoints.rebuilds + 1
"""
UPDATE_CHECKPOINT = "UPDATE projection_checkpoints SET position = $2, updated_at = now() WHERE name = $1"
RECORD_FAILURE = """
INSERT INTO projection_failures (name, position, attempts, error) VALUES ($1, $2, 1, $3)
ON CONFLICT (name, position) DO UPDATE SET attempts = projection_failures.attempts + 1,
    error = EXCLUDED.error, failed_at = now()
RETURNING attempts
"""
INSERT_PARKED = """
INSERT INTO projection_parked (name, position, tenant, attempts, error) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (name, position) DO NOTHING
"""
COUNT_PARKED = "SELECT count(*) FROM projection_parked WHERE name = $1"
DELETE_FAILURE = "DELETE FROM projection_failures WHERE name = $1 AND position = $2"
SELECT_PARKED = """
SELECT position, tenant, attempts, error, parked_at FROM projection_parked
WHERE name = $1 AND tenant = $2 ORDER BY position LIMIT $3
"""
SELECT_PARKED_ONE = "SELECT tenant FROM projection_parked WHERE name = $1 AND position = $2 AND tenant = $3"
DELETE_PARKED = "DELETE FROM projection_parked WHERE name = $1 AND position = $2"
UPDATE_PARKED = """
UPDATE projection_parked SET attempts = attempts + 1, error = $3, parked_at = now() WHERE name = $1 AND position = $2
"""
SELECT_POSITION = "SELECT position FROM projection_checkpoints WHERE name = $1"
DELETE_PARKED_UPTO = "DELETE FROM projection_parked WHERE name = $1 AND position <= $2"
DELETE_FAILURES_UPTO = "DELETE FROM projection_failures WHERE name = $1 AND position <= $2"


@dataclass(frozen=True, slots=True)
class ParkedEvent:
    position: int
    tenant: str
    attempts: int
    error: str
    parked_at: datetime


class CheckpointStore:
    """The checkpoint and the failed and parked events of one projection."""

    def __init__(self, projection: Projection) -> None:
        self.projection = projection
        self.name = projection.name

    async def lock(self, conn: asyncpg.Connection) -> int:
        """The stored checkpoint, locked for the caller's transaction (one
        writer at a time) and created at 0 for a new projection.

        Raises ProjectionOutdated when the state was built with other rules."""
        position, _ = await self.lock_counted(conn)
        return position

    async def lock_counted(self, conn: asyncpg.Connection) -> tuple[int, int]:
        """:meth:`lock`, with how many rebuilds have replaced the state
        (:meth:`replace` counts one each): a runner keeping state in memory
        knows by it that a replay replaced the state even when it ended at
        the same position (Projection.begin)."""
        p = self.projection
        await conn.execute(INSERT_CHECKPOINT, p.name, 0, p.rule_version, p.catalog_digest)
        row = await conn.fetchrow(SELECT_CHECKPOINT, p.name)
        if (row["rule_version"], row["catalog_digest"]) != (p.rule_version, p.catalog_digest):
            raise ProjectionOutdated({"projection": p.name, "built_rules": row["rule_version"],
                                      "built_digest": row["catalog_digest"], "rules": p.rule_version,
                                      "digest": p.catalog_digest})
        return int(row["position"]), int(row["rebuilds"])

    async def advance(self, conn: asyncpg.Connection, position: int) -> None:
        await conn.execute(UPDATE_CHECKPOINT, self.name, position)

    async def replace(self, conn: asyncpg.Connection, position: int) -> None:
        """A rebuilt state: the checkpoint is ``position`` under the current
        rules and frameworks, one more rebuild is counted, and the row stays
        locked for the caller's transaction."""
        p = self.projection
        await conn.execute(UPSERT_CHECKPOINT, p.name, position, p.rule_version, p.catalog_digest)
        await conn.fetchrow(SELECT_CHECKPOINT, p.name)  # hold the lock: the live runner waits

    async def record_failure(self, conn: asyncpg.Connection, position: int, error: str) -> int:
        """Count one more failure of the event at ``position``; returns its attempts."""
        return int(await conn.fetchval(RECORD_FAILURE, self.name, position, error))

    async def park(self, conn: asyncpg.Connection, position: int, tenant: str, attempts: int, error: str) -> None:
        """Set the event aside; it is no longer retried with the batches."""
        await conn.execute(INSERT_PARKED, self.name, position, tenant, attempts, error)
        await conn.execute(DELETE_FAILURE, self.name, position)

    async def replace_parked(self, conn: asyncpg.Connection, upto: int, failed: Iterable[tuple[int, str, str]]) -> None:
        """After a rebuild: the events parked up to ``upto`` are exactly those
        it ``failed`` on (position, tenant, error)."""
        await conn.execute(DELETE_PARKED_UPTO, self.name, upto)
        await conn.execute(DELETE_FAILURES_UPTO, self.name, upto)
        for position, tenant, error in failed:
            await conn.execute(INSERT_PARKED, self.name, position, tenant, 1, error)

    async def is_parked(self, conn: asyncpg.Connection, position: int, tenant: str) -> bool:
        return await is_parked(conn, self.name, position, tenant)

    async def unpark(self, conn: asyncpg.Connection, position: int) -> None:
        await conn.execute(DELETE_PARKED, self.name, position)

    async def parked_again(self, conn: asyncpg.Connection, position: int, error: str) -> None:
        """A retry of a parked event failed: count it, keep the new error."""
        await conn.execute(UPDATE_PARKED, self.name, position, error)


async def is_parked(db: asyncpg.Connection | asyncpg.Pool, name: str, position: int, tenant: str) -> bool:
    """Whether ``tenant``'s event at ``position`` is parked by the projection ``name``."""
    return await db.fetchval(SELECT_PARKED_ONE, name, position, tenant) is not None


async def parked_events(pool: asyncpg.Pool, name: str, tenant: str, limit: int = 200) -> list[ParkedEvent]:
    """The events of ``tenant`` the projection ``name`` parked, oldest first."""
    rows = await pool.fetch(SELECT_PARKED, name, tenant, limit)
    return [ParkedEvent(r["position"], r["tenant"], r["attempts"], r["error"], r["parked_at"]) for r in rows]


async def checkpoint_position(pool: asyncpg.Pool, name: str) -> int | None:
    """The projection's checkpoint without locking or creating it (None: never ran)."""
    position = await pool.fetchval(SELECT_POSITION, name)
    return None if position is None else int(position)


async def parked_count(pool: asyncpg.Pool, name: str) -> int:
    """How many events the projection ``name`` has set aside."""
    return int(await pool.fetchval(COUNT_PARKED, name))
