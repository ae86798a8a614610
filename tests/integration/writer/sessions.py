"""What the group-commit writer's PostgreSQL sessions are doing, for its
tests to wait on."""

from __future__ import annotations

import asyncio
import inspect

import asyncpg


async def lock_waiters(pool: asyncpg.Pool) -> int:
    return await pool.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )


async def until(count, at_least: int, timeout_s: float = 30.0) -> None:  # noqa: ANN001
    """Poll ``count()`` every 10 ms until it reaches ``at_least``: the moment a
    test needs, however slow the machine (the bound only ends a failing test)."""
    async with asyncio.timeout(timeout_s):
        while (value := count()) is not None and (await value if inspect.isawaitable(value) else value) < at_least:
            await asyncio.sleep(0.01)
