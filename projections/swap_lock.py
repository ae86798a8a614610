"""The live tables' exclusive locks for a replay's swap, taken so that nobody
queues behind them for long.

An ACCESS EXCLUSIVE request that waits (for a reader, or an erasure that
read ``identity_links``) makes every later request on that table wait
behind it, and whoever holds the log head lock while asking (an erasure, a
roster load, a link change) holds every Statement insert back with it.  So
the request gives up after :data:`LOCK_TIMEOUT_MS`, lets go of whatever it
got (a savepoint), and asks again a moment later: a waiting request
delays others by that long at most.  Once granted, the locks are held only
for the rename (projections/replay.py).
"""

from __future__ import annotations

import asyncio
from typing import Sequence

import asyncpg
import structlog

__all__ = ["LOCK_TIMEOUT_MS", "LiveTablesBusy", "lock_live_tables"]

log = structlog.get_logger("lrs.projections")

LOCK_TIMEOUT_MS = 100  # how long one request for the live tables' locks waits
RETRY_AFTER_S = 0.05  # how long it lets others go first before asking again
GIVE_UP_AFTER_S = 600.0  # how long a replay keeps asking before it swaps nothing in


class LiveTablesBusy(RuntimeError):
    """The live tables stayed locked by others for as long as the replay asked."""


async def lock_live_tables(
    conn: asyncpg.Connection, tables: Sequence[str], *, give_up_after_s: float | None = None
) -> None:
    """Lock ``public.``each of ``tables`` ACCESS EXCLUSIVE for the rest of
    the caller's transaction, asking for at most :data:`LOCK_TIMEOUT_MS`
    at a time (LiveTablesBusy: not granted within ``give_up_after_s``,
    default :data:`GIVE_UP_AFTER_S`)."""
    statement = f"LOCK TABLE {', '.join(f'public.{table}' for table in tables)} IN ACCESS EXCLUSIVE MODE"
    give_up_after_s = GIVE_UP_AFTER_S if give_up_after_s is None else give_up_after_s
    loop = asyncio.get_running_loop()
    deadline = loop.time() + give_up_after_s
    attempts = 0
    while True:
        attempts += 1
        try:
            async with conn.transaction():  # a savepoint: locks taken in it go when it fails
                previous = await conn.fetchval("SELECT current_setting('lock_timeout')")
                await conn.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT_MS}ms'")
                await conn.execute(statement)
                await conn.execute("SELECT set_config('lock_timeout', $1, true)", previous)
            return
        except asyncpg.LockNotAvailableError:
            if loop.time() >= deadline:
                raise LiveTablesBusy(
                    f"the live tables stayed locked by others for {give_up_after_s:.0f} s ({attempts} tries); "
                    "nothing was swapped in"
                ) from None
            if attempts % 100 == 0:
                log.warning("projection.swap_waits_for_locks", attempts=attempts)
            await asyncio.sleep(RETRY_AFTER_S)
