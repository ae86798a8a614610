"""An auditor's replay: the projection rebuilt from the log and compared
with the live one, which it leaves as it is.

The rebuild is a replay's (projections/replay.py ``rebuilt``): fresh tables
in a scratch schema, every event read checked against the hash chain as
``lrs audit verify`` checks it.  Then, in one transaction that is rolled
back, holding the checkpoint row's lock (the live runner waits, as it does
for a replay's swap): the live state is digested where its checkpoint is;
the rebuilt tables are brought to that same position with the events
committed since the rebuild started (chain-checked too), put in the live
tables' place, finished as a swap finishes them (``after_swap``) and
digested.  The rollback puts the live tables back; the scratch schema is
dropped.  Equal digests: the live projection is what the log gives.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Awaitable, Callable

import asyncpg

from projections.contract import Projection
from projections.replay import Rebuilt, rebuilt

__all__ = ["Comparison", "LiveBehind", "compare"]

WAIT_FOR_LIVE_S = 60.0  # how long the comparison waits for a live runner behind the rebuild
_POLL_S = 0.5


class LiveBehind(RuntimeError):
    """The live projection stays behind the position the rebuild read up to."""


@dataclass(frozen=True)
class Comparison:
    live: str  # the live projection's digest
    rebuilt: str  # the digest of the projection rebuilt from the log
    position: int  # the log position both reflect

    @property
    def equal(self) -> bool:
        return self.live == self.rebuilt


class _RolledBack(Exception):
    """Leaves the comparing transaction, undoing it."""


async def compare(
    pool: asyncpg.Pool,
    projection: Projection,
    *,
    batch_size: int = 10_000,
    progress: Callable[[int, int], None] | None = None,
    connect: Callable[[], Awaitable[asyncpg.Connection]] | None = None,
    wait_for_live_s: float = WAIT_FOR_LIVE_S,
) -> Comparison:
    """Rebuild ``projection`` from the log and compare its digest with the
    live one's at the same position (ChainBroken: the chain breaks;
    LiveBehind: the live checkpoint stays behind the rebuild for
    ``wait_for_live_s``).  Nothing of the live projection changes."""
    async with rebuilt(pool, projection, batch_size=batch_size, progress=progress, connect=connect) as built:
        deadline = asyncio.get_running_loop().time() + wait_for_live_s
        while True:
            found = await _compared(built, projection, batch_size)
            if isinstance(found, Comparison):
                return found
            if asyncio.get_running_loop().time() >= deadline:
                raise LiveBehind(
                    f"the live {projection.name} projection is at position {found}, behind the log's position "
                    f"{built.position} the rebuild read up to (is its runner running?)"
                )
            await asyncio.sleep(_POLL_S)


async def _compared(built: Rebuilt, projection: Projection, batch_size: int) -> Comparison | int:
    """The comparison, or where the live checkpoint is when it is behind the rebuild."""
    conn, scratch = built.conn, built.scratch
    found: Comparison | int | None = None
    try:
        async with conn.transaction():
            live_at = await built.checkpoints.lock(conn)  # the live runner waits until the rollback
            if live_at < built.position:
                found = live_at
                raise _RolledBack
            await conn.execute("SET LOCAL search_path TO public")
            live = await projection.digest(conn)
            await conn.execute(f'SET LOCAL search_path TO "{scratch}", public')
            position = await built.catch_up(batch_size, upto=live_at)
            if position != live_at:
                raise RuntimeError(f"the log ends at position {position}, before the live checkpoint {live_at}")
            for table in projection.tables:
                await conn.execute(f"DROP TABLE public.{table}")
                await conn.execute(f'ALTER TABLE "{scratch}".{table} SET SCHEMA public')
            await conn.execute("SET LOCAL search_path TO public")
            await projection.after_swap(conn)
            found = Comparison(live, await projection.digest(conn), live_at)
            raise _RolledBack
    except _RolledBack:
        pass
    await conn.execute(f'SET search_path TO "{scratch}", public')  # the rebuilt tables are back in scratch
    assert found is not None
    return found
