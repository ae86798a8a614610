"""One process at a time runs a projection: the leader holds a PostgreSQL
session advisory lock (lrs.store.leader_lock) for as long as it consumes."""

from __future__ import annotations

import asyncio
import contextlib
from typing import AsyncIterator, Callable

import asyncpg

from lrs.store import leader_lock

__all__ = ["leading", "sleep_or_stop"]


@contextlib.asynccontextmanager
async def leading(
    pool: asyncpg.Pool,
    name: str,
    stop: asyncio.Event,
    *,
    retry_every: float,
    waiting: Callable[[], None] | None = None,
) -> AsyncIterator[bool]:
    """Take the lock ``name`` on a connection of its own, trying again every
    ``retry_every`` seconds (``waiting()`` is called before each wait);
    yields True while it is held (released on the way out), or False when
    ``stop`` was set before it could be taken."""
    async with pool.acquire() as lock_conn:
        key = leader_lock.lock_key(name)
        while not await leader_lock.try_lock(lock_conn, key):
            if waiting is not None:
                waiting()
            await sleep_or_stop(stop, retry_every)
            if stop.is_set():
                yield False
                return
        try:
            yield True
        finally:
            await leader_lock.unlock(lock_conn, key)


async def sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except asyncio.TimeoutError:
        pass
