"""The connection a group commit keeps for the next group
(:mod:`lrs.store.writer`): when requests are already waiting at COMMIT, or
the group's clients will be back, the same round trip begins the next
group's transaction, and the connection stays out of the pool (no BEGIN of
its own and no pool reset for the next group)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import AsyncIterator, Callable

import asyncpg
import structlog

log = structlog.get_logger(__name__)

# How long release() waits for its ROLLBACK before it closes the connection
# instead (the commit announcer's close waits as long: lrs.store.commit_notifications).
ROLLBACK_TIMEOUT_S = 2.0


async def connection_for_group(
    pool: asyncpg.Pool, held: asyncpg.pool.PoolConnectionProxy | None
) -> asyncpg.pool.PoolConnectionProxy:
    """The connection the previous group kept, if it is still open, else one from the pool."""
    conn = held
    if conn is not None and not alive(conn):
        # Its backend died while the group was gathered: asyncpg gave it
        # back to the pool already (nothing of the group was sent on it).
        await release(pool, conn)
        conn = None
    if conn is None:
        conn = await pool.acquire()
    return conn


async def release(pool: asyncpg.Pool, conn: asyncpg.pool.PoolConnectionProxy) -> None:
    """Back to the pool, out of any transaction this writer began (asyncpg's
    release, the pool's reset if it has one — the service's writer pool has
    none: lrs.store.pool.create_statement_pool — or its termination of a
    broken connection, does the rest).

    Never raises: it runs in the writer's task loop and after a group's
    own error or COMMIT, where a broken connection must cost neither the
    task nor the group's answers.  asyncpg reports some broken connections
    as InternalClientError, neither PostgresError nor InterfaceError, and
    the pool closes a connection whose reset failed before it re-raises.

    Bounded: a ROLLBACK a quiet database host never answers would hold the
    writer's task (and its close) for asyncpg's 60 s command timeout, and
    the transaction a COMMIT began for clients that will be back is rolled
    back here at close and after every idle ``begun_hold_s``
    (tests/integration/test_writer_close_unreachable.py)."""
    try:
        try:
            await asyncio.wait_for(roll_back(conn), ROLLBACK_TIMEOUT_S)
        except TimeoutError:
            # The host went quiet: the connection is given up (PostgreSQL
            # rolls its transaction back when the session ends).
            log.warning("statement writer rollback not answered; connection closed", waited_s=ROLLBACK_TIMEOUT_S)
            conn.terminate()
        except Exception as exc:  # noqa: BLE001 - see above
            log.warning("statement writer rollback failed", error=repr(exc))
    finally:
        try:
            await pool.release(conn)
        except Exception as exc:  # noqa: BLE001 - the pool has closed it
            log.warning("statement writer connection closed", error=repr(exc))


@contextlib.asynccontextmanager
async def group_transaction(
    conn: asyncpg.Connection, more_waiting: Callable[[], bool], chained: Callable[[], None],
    begin: Callable[[], str],
) -> AsyncIterator[None]:
    """A group's transaction: begun by the previous group's COMMIT when
    the connection was kept, else here; committed at the end, and when a
    next group is expected (``more_waiting``: requests already waiting, or
    clients of this group coming back, lrs.store.writer), the same round trip
    begins its transaction (``COMMIT; BEGIN ...``: one round trip a group
    fewer).  A failed COMMIT runs no BEGIN: the error is the group's, and
    the connection goes back to the pool.  An error inside rolls back.
    ``begin`` gives the BEGIN to send, asked when it is sent
    (lrs.store.group_commit_sql.begin_group)."""
    if not conn.is_in_transaction():
        await conn.execute(begin())
    try:
        yield
    except BaseException:
        # the group's error is what its requests get; a broken connection's own is logged by release
        with contextlib.suppress(Exception):
            await roll_back(conn)
        raise
    if more_waiting():
        await conn.execute("COMMIT; " + begin())
        chained()
    else:
        await conn.execute("COMMIT")


async def roll_back(conn: asyncpg.pool.PoolConnectionProxy) -> None:
    """End the transaction this writer began on ``conn``, if the connection
    is still open and in one; its error is the caller's to handle."""
    if alive(conn) and conn.is_in_transaction():
        await conn.execute("ROLLBACK")


def alive(conn: asyncpg.pool.PoolConnectionProxy) -> bool:
    """Whether the pooled connection is still open.  When its backend goes
    away asyncpg hands it back to the pool at once, and its proxy then
    answers only InterfaceError ("released back to the pool")."""
    try:
        return not conn.is_closed()
    except asyncpg.InterfaceError:
        return False
