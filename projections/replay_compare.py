"""An auditor's replay: the projection rebuilt from the log and compared
with the live one, which it leaves as it is.

The rebuild is a replay's (projections/replay.py ``rebuilt``): fresh tables
in a scratch schema, every event read checked against the hash chain as
``lrs audit verify`` checks it.  Then the live state is digested where its
checkpoint is, holding the checkpoint row's lock meanwhile (the live runner
waits; the live tables are only read, as any reader reads them).  The
rebuilt tables are brought to that same position with the events committed
since the rebuild started (chain-checked too), finished where they are as a
replay finishes them (``finish_rebuild``) and digested there, in a
transaction that is rolled back; no live table is locked or written
meanwhile, so nothing waits for the comparison but the live runner, and
that only while the live state is digested.  The scratch schema is dropped.
Equal digests: the live projection is what the log gives.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import AsyncIterator, Awaitable, Callable

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
            live_at, live = await _live_digest(built, projection)
            if live is not None:
                return Comparison(live, await _rebuilt_digest(built, projection, batch_size, live_at), live_at)
            if asyncio.get_running_loop().time() >= deadline:
                raise LiveBehind(
                    f"the live {projection.name} projection is at position {live_at}, behind the log's position "
                    f"{built.position} the rebuild read up to (is its runner running?)"
                )
            await asyncio.sleep(_POLL_S)


@contextlib.asynccontextmanager
async def _undone(conn: asyncpg.Connection) -> AsyncIterator[None]:
    """A transaction rolled back however its block ends."""
    transaction = conn.transaction()
    await transaction.start()
    try:
        yield
    finally:
        await transaction.rollback()


async def _live_digest(built: Rebuilt, projection: Projection) -> tuple[int, str | None]:
    """Where the live checkpoint is, and the live state's digest there (None:
    the checkpoint is behind the rebuild), read while the checkpoint row is
    locked: the live runner waits, nobody else does."""
    conn = built.conn
    async with _undone(conn):  # (locking the row may create it: undone)
        live_at = await built.checkpoints.lock(conn)
        if live_at < built.position:
            return live_at, None
        await conn.execute("SET LOCAL search_path TO public")
        return live_at, await projection.digest(conn)


async def _rebuilt_digest(built: Rebuilt, projection: Projection, batch_size: int, upto: int) -> str:
    """The rebuilt state brought to position ``upto``, finished and digested
    in the scratch schema (the connection's search path), all of it undone
    after: what the catch-up would record of an event it fails on too."""
    async with _undone(built.conn):
        position = await built.catch_up(batch_size, upto=upto)
        if position != upto:
            raise RuntimeError(f"the log ends at position {position}, before the live checkpoint {upto}")
        await projection.finish_rebuild(built.conn)
        return await projection.digest(built.conn)
