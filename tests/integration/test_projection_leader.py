"""A projection's leadership (projections.leader.leading) against a real
PostgreSQL: the error that ends the leader's work is the one raised, even
when the crash behind it also closed the lock connection, so that unlocking
there fails too."""

from __future__ import annotations

import asyncio
from typing import AsyncIterator

import asyncpg
import pytest
from structlog.testing import capture_logs

from lrs.store import leader_lock
from projections.leader import leading

LOCK = "projection:leader-test"


class RunnerFailed(Exception):
    """What the work done while leading failed with."""


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=3)
    yield pool
    await pool.close()


async def lock_is_free(pool: asyncpg.Pool) -> bool:
    """Whether another session can take the lock now (and gives it back)."""
    async with pool.acquire() as conn:
        key = leader_lock.lock_key(LOCK)
        taken = await leader_lock.try_lock(conn, key)
        if taken:
            await leader_lock.unlock(conn, key)
        return taken


def session_ended(conn: asyncpg.Connection) -> bool:
    """Whether the client has seen ``conn``'s session end: a pool's lease
    whose session ended is handed back to the pool at once, and answers
    nothing more."""
    try:
        return conn.is_closed()
    except asyncpg.InterfaceError:
        return True


async def test_the_error_that_ended_the_leader_is_raised_when_the_crash_also_closed_the_lock_connection(
    pool: asyncpg.Pool,
) -> None:
    """The lock connection's session ends (as a PostgreSQL crash or restart
    ends every session) and the work fails: that failure is what the caller
    sees (the supervisor logs it as projection.crashed), not the unlock's on
    the closed connection, which is logged apart."""
    with capture_logs() as logs, pytest.raises(RunnerFailed, match="the runner's own failure"):
        async with leading(pool, LOCK, asyncio.Event(), retry_every=0.1) as lock_conn:
            assert lock_conn is not None and not await lock_is_free(pool)
            pid = lock_conn.get_server_pid()
            assert await pool.fetchval("SELECT pg_terminate_backend($1)", pid)
            for _ in range(600):  # until the client has seen its session end (only a failing test waits long)
                if session_ended(lock_conn):
                    break
                await asyncio.sleep(0.05)
            assert session_ended(lock_conn)
            raise RunnerFailed("the runner's own failure")
    unlock_failures = [entry for entry in logs if entry["event"] == "projection.unlock_failed"]
    assert len(unlock_failures) == 1 and unlock_failures[0]["lock"] == LOCK
    assert "RunnerFailed" not in unlock_failures[0]["error"]
    assert await lock_is_free(pool)  # it ended with the session


async def test_a_leader_whose_work_fails_on_a_live_connection_raises_that_failure_and_logs_no_unlock_failure(
    pool: asyncpg.Pool,
) -> None:
    with capture_logs() as logs, pytest.raises(RunnerFailed, match="failed while leading"):
        async with leading(pool, LOCK, asyncio.Event(), retry_every=0.1) as lock_conn:
            assert lock_conn is not None
            raise RunnerFailed("failed while leading")
    assert not [entry for entry in logs if entry["event"] == "projection.unlock_failed"]
    assert await lock_is_free(pool)


async def test_an_unlock_that_fails_on_a_live_connection_leaves_the_lock_free_for_the_next_leader(
    pool: asyncpg.Pool, database_url: str,
) -> None:
    """The work failed inside a transaction of the lock connection, so the
    unlock on it fails too (the transaction is aborted) while the session
    lives on: only logged, and the connection goes back to the pool, whose
    reset rolls back and releases every advisory lock of the session -- a
    leader elsewhere must not wait forever for a lock held by an idle pooled
    connection.  Asked from a session of its own: an advisory lock is
    re-entrant, so the pooled session that holds it would find it free."""
    with capture_logs() as logs, pytest.raises(RunnerFailed, match="failed inside a transaction"):
        async with leading(pool, LOCK, asyncio.Event(), retry_every=0.1) as lock_conn:
            assert lock_conn is not None
            await lock_conn.execute("BEGIN")
            with pytest.raises(asyncpg.DivisionByZeroError):
                await lock_conn.execute("SELECT 1/0")
            raise RunnerFailed("failed inside a transaction")
    unlock_failures = [entry for entry in logs if entry["event"] == "projection.unlock_failed"]
    assert len(unlock_failures) == 1 and "InFailedSQLTransaction" in unlock_failures[0]["error"]
    elsewhere = await asyncpg.connect(database_url)
    try:
        key = leader_lock.lock_key(LOCK)
        assert await leader_lock.try_lock(elsewhere, key)
        await leader_lock.unlock(elsewhere, key)
    finally:
        await elsewhere.close()
