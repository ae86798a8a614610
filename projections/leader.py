"""One process at a time runs a projection: the leader holds a PostgreSQL
session advisory lock (lrs.store.leader_lock) for as long as it consumes."""

from __future__ import annotations

import asyncio
import contextlib
from typing import AsyncIterator, Awaitable, Callable

import asyncpg
import structlog

from lrs.store import leader_lock

__all__ = ["WhileLeading", "leading", "sleep_or_stop"]

log = structlog.get_logger("lrs.projections")

# Started by the leader on its lock connection once it holds the lock; the
# function it returns is awaited before the lock is released.
WhileLeading = Callable[[asyncpg.Connection], Callable[[], Awaitable[None]]]


@contextlib.asynccontextmanager
async def leading(
    pool: asyncpg.Pool,
    name: str,
    stop: asyncio.Event,
    *,
    retry_every: float,
    waiting: Callable[[], None] | None = None,
) -> AsyncIterator[asyncpg.Connection | None]:
    """Take the lock ``name`` on a connection of its own, trying again every
    ``retry_every`` seconds (``waiting()`` is called before each wait);
    yields that connection while the lock is held (released on the way
    out), or None when ``stop`` was set before it could be taken.

    When the body fails, its error is the one raised: the failure that ended
    it (a crash of PostgreSQL, the connection lost) has often closed the lock
    connection too, and unlocking there fails in turn; that failure is only
    logged (``projection.unlock_failed``): the lock goes with the session, or
    with the pool's reset of the connection (:mod:`lrs.store.leader_lock`)."""
    async with pool.acquire() as lock_conn:
        key = leader_lock.lock_key(name)
        while not await leader_lock.try_lock(lock_conn, key):
            if waiting is not None:
                waiting()
            await sleep_or_stop(stop, retry_every)
            if stop.is_set():
                yield None
                return
        try:
            yield lock_conn
        except BaseException:
            try:
                await leader_lock.unlock(lock_conn, key)
            except Exception as exc:
                log.warning("projection.unlock_failed", lock=name, error=repr(exc))
            raise
        await leader_lock.unlock(lock_conn, key)


async def sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except asyncio.TimeoutError:
        pass
