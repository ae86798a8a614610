"""The group-commit writer against a real PostgreSQL: a group that fails
midway, a writer task that dies, a cached statement a migration changed."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest

from lrs.store import StatementWriter
from lrs.store.availability import storage_unavailable
from lrs.store.writer import WriterFailedError
from lrs.store.log_reader import last_position
from tests.integration.writer.statements import prepared, statement


async def test_a_failure_while_adding_a_chains_keys_stores_nothing_of_the_group(
    writer: StatementWriter, pool: asyncpg.Pool
) -> None:
    """The keys of StatementRef chains are added in the group's transaction,
    after its rows: when that fails (here the disk, at the insert of
    lrs/store/ref_keys.py), the whole group is rolled back and its requests
    get the storage error; the writer goes on."""
    target = prepared(statement())
    await writer.append("default", target)
    await pool.execute("""
        CREATE FUNCTION refuse_reached_keys() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF current_query() LIKE '%NOT EXISTS (SELECT 1 FROM statement_keys e%' THEN
                RAISE EXCEPTION 'no space left on device' USING ERRCODE = 'disk_full';
            END IF;
            RETURN NEW;
        END $$;
        CREATE TRIGGER refuse_reached_keys BEFORE INSERT ON statement_keys
        FOR EACH ROW EXECUTE FUNCTION refuse_reached_keys();
    """)
    referring = prepared(statement(object={"objectType": "StatementRef", "id": str(target[0].statement_id)}))
    with pytest.raises(asyncpg.exceptions.DiskFullError):
        await writer.append("default", referring)
    assert await last_position(pool) == 1
    assert await pool.fetchval("SELECT count(*) FROM statements") == 1
    assert await pool.fetchval("SELECT count(*) FROM statement_keys WHERE position > 1") == 0
    await pool.execute("DROP TRIGGER refuse_reached_keys ON statement_keys")
    assert (await writer.append("default", referring))[0].position == 2
    # the target's verb key, which only the chain's keys put at the referring Statement's position
    assert await pool.fetchval(
        "SELECT count(*) FROM statement_keys WHERE position = 2 AND key = statement_key('default', $1)",
        "V:http://example.com/verbs/did",
    ) == 1


async def test_a_writer_task_that_dies_fails_what_waits_and_is_started_again(pool: asyncpg.Pool) -> None:
    """A bug that ends the writer's task must not leave requests waiting
    forever: the waiting ones and those that come while it is down get the
    storage-unavailable error (503), and the task runs again after a backoff."""
    writer = StatementWriter(pool, wait_ms=1.0, first_restart_backoff_s=0.5)
    await writer.start()
    take_group = writer._take_group

    def dies_once() -> Any:
        writer._take_group = take_group  # type: ignore[method-assign]
        raise RuntimeError("a bug in the loop")

    writer._take_group = dies_once  # type: ignore[method-assign]
    try:
        async with asyncio.timeout(5):
            with pytest.raises(WriterFailedError) as failed:
                await writer.append("default", prepared(statement()))
        assert storage_unavailable(failed.value)
        assert writer.status() == {
            "state": "restarting", "restarts": 1, "last_failure": "RuntimeError('a bug in the loop')",
        }
        async with asyncio.timeout(5):
            with pytest.raises(WriterFailedError):  # refused at once while the task is down, not queued
                await writer.append("default", prepared(statement()))
        assert writer.in_flight == 0 and writer.pending_statements == 0
        async with asyncio.timeout(5):
            while not writer.running:
                await asyncio.sleep(0.02)
        results = await writer.append("default", prepared(statement()))
        assert [(r.inserted, r.position) for r in results] == [(True, 1)]  # nothing of the failed ones stored
        assert writer.status()["state"] == "running"
    finally:
        async with asyncio.timeout(5):
            await writer.close()
    assert writer.status()["state"] == "stopped"


async def test_a_group_whose_cached_statement_a_migration_changed_answers_storage_unavailable(
    migrated_url: str, pool: asyncpg.Pool
) -> None:
    """A migration that changes a column the groups read (ALTER TABLE while
    the service runs) makes PostgreSQL refuse the group connection's cached
    statement inside the group's transaction (asyncpg's
    InvalidCachedStatementError, which it retries only outside one): that
    group is a storage failure, 503 with Retry-After, not a 500; the next
    group prepares again and commits."""
    from lrs.store.pool import create_statement_pool

    groups = await create_statement_pool(migrated_url, application_name="lrs-writer-test", max_size=1)
    writer = StatementWriter(pool, wait_ms=0.0, group_pool=groups)
    await writer.start()
    many = 64  # a group that reads the head on its own (SELECT ... FOR UPDATE), not with its lookups
    try:
        await writer.append("default", prepared(*(statement() for _ in range(many))))
        await pool.execute("ALTER TABLE log_head ALTER COLUMN key_epoch TYPE numeric")
        with pytest.raises(Exception) as failed:
            await writer.append("default", prepared(*(statement() for _ in range(many))))
        assert isinstance(failed.value, asyncpg.exceptions.InvalidCachedStatementError)
        assert storage_unavailable(failed.value)
        await writer.append("default", prepared(*(statement() for _ in range(many))))
    finally:
        await writer.close()
        await groups.close()
    assert await last_position(pool) == 2 * many
