"""The group-commit writer against a real PostgreSQL: the activity
definitions a group merges, beside the catch-up."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import asyncpg

from lrs.store import StatementWriter
from tests.integration.writer.statements import prepared, statement


async def test_a_defining_group_merges_its_definitions_and_moves_their_checkpoint(
    writer: StatementWriter, pool: asyncpg.Pool
) -> None:
    """The group's own statement moves the definitions' checkpoint (no round trip
    of its own); groups without a defining sender leave it and the rows alone."""
    activity = "http://example.com/defined"

    def defined(name: dict[str, str]) -> dict[str, Any]:
        return statement(activity=activity, object={"id": activity, "definition": {"name": name}})

    checkpoint = "SELECT position FROM activity_definitions_checkpoint WHERE singleton"
    row = "SELECT definition FROM activity_definitions WHERE tenant = 'default' AND activity_id = $1"
    before = await pool.fetchval(checkpoint)
    await writer.append("default", prepared(defined({"en": "Not defining"})), defines=False)
    assert await pool.fetchval(checkpoint) == before
    assert await pool.fetchval(row, activity) is None
    await writer.append("default", prepared(defined({"en": "One"})), defines=True)
    await writer.append("default", prepared(defined({"vi": "Một"}), defined({"en": "Two"})), defines=True)
    assert await pool.fetchval(checkpoint) == writer.last_position
    assert json.loads(await pool.fetchval(row, activity)) == {"name": {"en": "Two", "vi": "Một"}}


async def test_small_defining_groups_read_their_definitions_in_the_head_locks_call(
    migrated_url: str, pool: asyncpg.Pool
) -> None:
    """Single-statement groups of defining senders read and lock the canonical
    definitions in the call that takes the head lock (no round trip of their
    own under the lock); two writers merging into the same Activity at once
    lose none of each other's names."""
    from lrs.store.activities import SELECT_DEFINITIONS_FOR_UPDATE
    from lrs.store.pool import create_statement_pool

    activity = "http://example.com/defined-concurrently"

    def named(language: str) -> dict[str, Any]:
        return statement(activity=activity, object={"id": activity, "definition": {"name": {language: language}}})

    pools = [await create_statement_pool(migrated_url, application_name=f"lrs-writer-defs-{n}", max_size=1)
             for n in range(2)]
    writers = [StatementWriter(pool, wait_ms=0.0, shared_log=True, group_pool=groups) for groups in pools]
    try:
        for writer in writers:
            await writer.start()
        languages = [f"x{n}" for n in range(24)]
        await asyncio.gather(*(
            writers[n % 2].append("default", prepared(named(language)), defines=True)
            for n, language in enumerate(languages)
        ))
        definition = await pool.fetchval(
            "SELECT definition FROM activity_definitions WHERE tenant = 'default' AND activity_id = $1", activity
        )
        assert json.loads(definition) == {"name": {language: language for language in languages}}
        for groups in pools:
            async with groups.acquire() as conn:
                sent = [row["statement"] for row in await conn.fetch("SELECT statement FROM pg_prepared_statements")]
            assert any("log_head_locked_with_touched_and_definitions" in text for text in sent), sent
            assert SELECT_DEFINITIONS_FOR_UPDATE not in sent
    finally:
        for writer in writers:
            await writer.close()
        for groups in pools:
            await groups.close()


async def test_a_definition_the_catch_up_inserts_while_a_small_group_waits_is_merged_not_overwritten(
    writer: StatementWriter, pool: asyncpg.Pool
) -> None:
    """The catch-up (lrs.store.activities.catch_up_definitions) holds the
    definitions' checkpoint while it inserts a definition; a small defining
    group waiting for the checkpoint in its head-lock call reads the row the
    catch-up committed (the call's definitions query starts after the lock
    is granted) and merges into it, rather than taking it for missing and
    overwriting it."""
    activity = "http://example.com/defined-during-catch-up"
    async with pool.acquire() as catch_up:
        transaction = catch_up.transaction()
        await transaction.start()
        await catch_up.execute("SELECT position FROM activity_definitions_checkpoint WHERE singleton FOR UPDATE")
        await catch_up.execute(
            "INSERT INTO activity_definitions (tenant, activity_id, definition, position) VALUES ('default', $1, $2, 0)",
            activity, json.dumps({"name": {"vi": "Bài một"}}).encode(),
        )
        append = asyncio.create_task(writer.append(
            "default", prepared(statement(activity=activity, object={"id": activity, "definition": {"name": {"en": "One"}}})),
            defines=True,
        ))
        await asyncio.sleep(0.2)
        assert not append.done()  # waiting for the checkpoint, under the head lock
        await transaction.commit()
    await append
    definition = await pool.fetchval(
        "SELECT definition FROM activity_definitions WHERE tenant = 'default' AND activity_id = $1", activity
    )
    assert json.loads(definition) == {"name": {"en": "One", "vi": "Bài một"}}
