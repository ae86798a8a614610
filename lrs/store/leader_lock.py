"""Leader election with a Postgres session advisory lock.

The lock belongs to the database session that took it: it is released by
``unlock``, when the connection goes back to an asyncpg pool (the pool's reset
runs ``pg_advisory_unlock_all()``), or when the session dies with its process.
"""

from __future__ import annotations

import hashlib

import asyncpg

TRY_LOCK = "SELECT pg_try_advisory_lock($1)"
UNLOCK = "SELECT pg_advisory_unlock($1)"


def lock_key(name: str) -> int:
    """A stable signed 64-bit lock key for ``name`` (the same in every process)."""
    digest = hashlib.sha256(f"lrs.leader:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


async def try_lock(conn: asyncpg.Connection, key: int) -> bool:
    return bool(await conn.fetchval(TRY_LOCK, key))


async def unlock(conn: asyncpg.Connection, key: int) -> bool:
    return bool(await conn.fetchval(UNLOCK, key))
