"""Server-side secrets kept in the database (e.g. the key that signs ``more`` cursors).

Every process of one deployment must use the same value, so it is created
once, race-safe: concurrent first starts insert-if-absent and all read back
the winner.
"""

from __future__ import annotations

import secrets

import asyncpg

INSERT_IF_ABSENT = "INSERT INTO lrs_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING"
SELECT_SECRET = "SELECT value FROM lrs_secrets WHERE name = $1"

Pool = asyncpg.Pool | asyncpg.Connection


async def get_or_create(pool: Pool, name: str, nbytes: int = 32) -> bytes:
    """The secret called ``name``, created with ``nbytes`` random bytes if absent."""
    value = await pool.fetchval(SELECT_SECRET, name)
    if value is not None:
        return value
    await pool.execute(INSERT_IF_ABSENT, name, secrets.token_bytes(nbytes))
    value = await pool.fetchval(SELECT_SECRET, name)
    assert value is not None
    return value
