"""Named positions in the event log (the relay's progress, replays)."""

from __future__ import annotations

import asyncpg

SELECT_CHECKPOINT = "SELECT position FROM relay_checkpoints WHERE name = $1"
UPSERT_CHECKPOINT = """
INSERT INTO relay_checkpoints (name, position, updated_at) VALUES ($1, $2, now())
ON CONFLICT (name) DO UPDATE SET position = EXCLUDED.position, updated_at = now()
"""

Pool = asyncpg.Pool | asyncpg.Connection


async def get_checkpoint(pool: Pool, name: str) -> int:
    """The saved position for ``name``; 0 (before the first event) if none."""
    position = await pool.fetchval(SELECT_CHECKPOINT, name)
    return 0 if position is None else position


async def set_checkpoint(pool: Pool, name: str, position: int) -> None:
    await pool.execute(UPSERT_CHECKPOINT, name, position)
