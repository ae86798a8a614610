"""The group-commit writer against a real PostgreSQL: the connection and
transaction it keeps begun for the next group."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest

from lrs.eventlog import verify_chain
from lrs.store import StatementWriter, create_pool
from lrs.store.kept_connection import alive
from lrs.store.log_reader import last_position, read_events_after
from tests.integration.writer.sessions import lock_waiters, until
from tests.integration.writer.statements import prepared, statement


async def _idle_in_transaction(pool: asyncpg.Pool) -> int:
    return await pool.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND state LIKE 'idle in transaction%'"
    )


async def test_a_commit_that_begins_the_next_group_has_committed_before_the_answer(
    migrated_url: str, pool: asyncpg.Pool
) -> None:
    """Requests waiting when a group commits: the same round trip begins the
    next group's transaction on the kept connection; every answer still
    means committed, as another session sees, and nothing is left open."""
    writer = StatementWriter(pool, wait_ms=0.0)
    await writer.start()
    outside = await create_pool(migrated_url, min_size=1, max_size=4)  # other sessions
    try:
        async def one(index: int) -> None:
            await asyncio.sleep(index * 0.002)  # arriving while groups commit
            statements = prepared(statement())
            await writer.append("default", statements)
            assert await outside.fetchval(
                "SELECT count(*) FROM statements WHERE statement_id = $1", statements[0].statement_id
            ) == 1

        await asyncio.gather(*(one(index) for index in range(40)))
        assert 0 < writer.groups_chained < writer.groups_committed
        assert writer.statements_committed == 40 == await last_position(pool)
        await until(lambda: _none_idle(pool), 1)  # the last group found nobody waiting: its connection went back
        assert await _idle_in_transaction(pool) == 0
    finally:
        await writer.close()
        await outside.close()
    assert verify_chain(await read_events_after(pool, 0, 100)) is None


async def _commit_while_the_next_request_goes_away(pool: asyncpg.Pool, writer: StatementWriter) -> None:
    """A first group waits for the head lock another session holds; a second
    request arrives meanwhile (so the first COMMIT begins the next group's
    transaction) and goes away before that group is taken."""
    async with pool.acquire() as blocker:
        transaction = blocker.transaction()
        await transaction.start()
        await blocker.fetchrow("SELECT position FROM log_head WHERE singleton FOR UPDATE")
        first = asyncio.create_task(writer.append("default", prepared(statement())))
        await until(lambda: lock_waiters(pool), 1)  # the first group waits for the head
        gone = asyncio.create_task(writer.append("default", prepared(statement())))
        await until(lambda: writer.pending_statements, 2)
        gone.cancel()  # waiting when the first group commits, gone before the next is taken
        await transaction.rollback()
    await first


async def _none_idle(pool: asyncpg.Pool) -> int:
    return int(await _idle_in_transaction(pool) == 0)


async def test_a_begun_transaction_nobody_waits_for_any_more_is_rolled_back(pool: asyncpg.Pool) -> None:
    writer = StatementWriter(pool, wait_ms=50.0)
    await writer.start()
    try:
        await _commit_while_the_next_request_goes_away(pool, writer)
        assert writer.groups_chained == 1
        await until(lambda: _none_idle(pool) if writer._held is None else 0, 1)
        assert writer._held is None
        assert await _idle_in_transaction(pool) == 0
        assert await last_position(pool) == 1
        await writer.append("default", prepared(statement()))  # the writer goes on
        assert await last_position(pool) == 2
    finally:
        await writer.close()


async def test_a_kept_connection_lost_between_groups_is_not_used_for_the_next(pool: asyncpg.Pool) -> None:
    """The backend of the connection kept for the next group dies while the
    writer gathers that group (PostgreSQL restarted, an operator's
    pg_terminate_backend): the group goes on a connection from the pool, as
    it would have without the kept one, instead of failing on the dead one."""
    # A group is gathered until it has two statements (the 60 s wait only ends a
    # failing test): the second group waits for the third request, which this
    # test sends once the kept backend is dead, however slowly a loaded machine
    # gets there (a 300 ms gathering could end first and use the kept one).
    writer = StatementWriter(pool, wait_ms=60_000.0, max_statements=2)
    await writer.start()
    try:
        async with pool.acquire() as blocker:
            transaction = blocker.transaction()
            await transaction.start()
            await blocker.fetchrow("SELECT position FROM log_head WHERE singleton FOR UPDATE")
            first = asyncio.create_task(writer.append("default", prepared(statement(), statement())))  # full
            await until(lambda: lock_waiters(pool), 1)  # the first group waits for the head
            second = asyncio.create_task(writer.append("default", prepared(statement())))
            await until(lambda: writer.pending_statements, 3)
            await transaction.rollback()
        await first
        assert writer.groups_chained == 1
        kept = await pool.fetchval(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND state LIKE 'idle in transaction%'"
        )
        # While kept it holds no snapshot and no lock but its own transaction's
        # id: nothing for VACUUM, a migration, an erasure or the anchors to wait for.
        assert await pool.fetchval("SELECT backend_xmin FROM pg_stat_activity WHERE pid = $1", kept) is None
        assert await pool.fetchval(
            "SELECT array_agg(locktype ORDER BY locktype) FROM pg_locks WHERE pid = $1", kept
        ) == ["virtualxid"]
        held = writer._held
        assert held is not None
        assert await pool.fetchval("SELECT pg_terminate_backend($1)", kept)
        await until(lambda: int(not alive(held)), 1)  # the writer's side has seen it go
        assert not second.done()  # still gathered
        third = asyncio.create_task(writer.append("default", prepared(statement())))  # fills the group
        results = await second  # committed on another connection
        assert results[0].position == 3
        assert (await third)[0].position == 4
        assert await last_position(pool) == 4
    finally:
        await writer.close()


async def test_a_kept_connection_that_cannot_roll_back_does_not_stop_the_writer(
    pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The transaction begun for a next group nobody waits for any more is
    rolled back on a connection that may be broken: asyncpg reports a
    connection whose backend was terminated, before it sees the socket close,
    as InternalClientError ("cannot switch to state ...; another operation is
    in progress"), which is not an InterfaceError.  The writer must go on
    answering, not end its task and leave every later request waiting."""
    writer = StatementWriter(pool, wait_ms=200.0)
    await writer.start()
    try:
        await _commit_while_the_next_request_goes_away(pool, writer)
        kept = writer._held
        assert kept is not None
        broken = kept._con  # the Connection behind the pool's proxy
        execute = asyncpg.Connection.execute

        async def failing(self: asyncpg.Connection, query: str, *args: Any, **kwargs: Any) -> str:
            if self is broken and query == "ROLLBACK":
                raise asyncpg.exceptions.InternalClientError(
                    "cannot switch to state 13; another operation (2) is in progress"
                )
            return await execute(self, query, *args, **kwargs)

        monkeypatch.setattr(asyncpg.Connection, "execute", failing)
        for _ in range(100):
            if writer._held is None:
                break
            await asyncio.sleep(0.01)
        assert writer._held is None
        results = await asyncio.wait_for(writer.append("default", prepared(statement())), 10)
        assert results[0].position == 2  # the writer goes on
    finally:
        monkeypatch.undo()
        await writer.close()


async def test_groups_on_a_pool_that_is_not_reset_send_no_reset_and_stay_durable(
    migrated_url: str, pool: asyncpg.Pool
) -> None:
    """The service gives the writer a pool whose connections are not reset
    on release (lrs.store.pool.create_statement_pool): a group that finds
    nobody waiting goes back after its COMMIT with no reset query (one
    PostgreSQL transaction a group, not two), with synchronous_commit on,
    and the next group on the same connection finds nothing left open."""
    from lrs.store.pool import create_statement_pool

    groups = await create_statement_pool(migrated_url, application_name="lrs-writer-test", max_size=2)
    writer = StatementWriter(pool, wait_ms=0.0, group_pool=groups)
    await writer.start()
    try:
        for _ in range(5):  # one after another: each group finds nobody waiting
            await writer.append("default", prepared(statement()))
        assert writer.groups_committed == 5 and writer.groups_chained == 0
        rows = await pool.fetch(
            "SELECT state, query FROM pg_stat_activity WHERE application_name = 'lrs-writer-test'"
        )
        assert [(row["state"], row["query"]) for row in rows] == [("idle", "COMMIT")]
        async with groups.acquire() as conn:  # what the groups' sessions run with
            assert await conn.fetchval("SHOW synchronous_commit") == "on"
    finally:
        await writer.close()
        await groups.close()
    assert await last_position(pool) == 5
    assert verify_chain(await read_events_after(pool, 0, 100)) is None
