"""The read model without the keys' text (migration 0092): a store built by
the old schema, upgraded, answers every filter as a store the writer filled
under the new one; candidates that share only a hash are dropped."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import asyncpg
import msgspec

from lrs.batching import filter_keys
from lrs.eventlog import finalize_statement
from lrs.ingest.prepare import prepare_statements
from lrs.ingest.query import StatementQuery
from lrs.store import StatementWriter, create_pool
from lrs.store.migrations import apply_migrations, list_migrations
from lrs.store.reader import get_statement, query_statements

HOME = "https://lrs.example.gov"
AUTHORITY = {"objectType": "Agent", "account": {"homePage": HOME, "name": "app"}}
OTHER_AUTHORITY = {"objectType": "Agent", "account": {"homePage": HOME, "name": "other-app"}}
COURSE = "http://example.com/course"
VERBS = ("http://example.com/v/did", "http://example.com/v/passed")


def body(n: int, **extra: Any) -> dict[str, Any]:
    statement = {
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"lean{n}")),
        "actor": {"mbox": f"mailto:learner{n % 3}@example.com"},
        "verb": {"id": VERBS[n % 2]},
        "object": {"id": f"http://example.com/unit/{n % 4}"},
        "context": {"contextActivities": {"parent": [{"id": COURSE}]},
                    "instructor": {"mbox": "mailto:teacher@example.com"}},
    }
    if n % 5 == 0:
        statement["context"]["registration"] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"reg{n % 2}"))
    statement.update(extra)
    return statement


def bodies() -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(statement, authority): plain ones, a StatementRef to the first, a voiding of the second."""
    plain = [(body(n), AUTHORITY if n % 4 else OTHER_AUTHORITY) for n in range(12)]
    ref = body(20, verb={"id": "http://example.com/v/commented"},
               object={"objectType": "StatementRef", "id": plain[0][0]["id"]})
    voiding = body(21, verb={"id": "http://adlnet.gov/expapi/verbs/voided"},
                   object={"objectType": "StatementRef", "id": plain[1][0]["id"]})
    return plain + [(ref, AUTHORITY), (voiding, AUTHORITY)]


QUERIES = [
    {},
    {"ascending": True},
    {"agent": "mbox:mailto:learner1@example.com"},
    {"agent": "mbox:mailto:teacher@example.com"},
    {"agent": "mbox:mailto:teacher@example.com", "related_agents": True},
    {"agent": f"account:{HOME}|app", "related_agents": True},
    {"verb": VERBS[0]},
    {"verb": VERBS[1], "ascending": True},
    {"activity": "http://example.com/unit/0"},
    {"activity": COURSE},
    {"activity": COURSE, "related_activities": True},
    {"registration": uuid.uuid5(uuid.NAMESPACE_URL, "reg0")},
    {"agent": "mbox:mailto:learner0@example.com", "verb": VERBS[0]},
    {"agent": "mbox:mailto:learner2@example.com", "activity": "http://example.com/unit/2"},
    {"activity": "http://example.com/unit/1", "verb": VERBS[1]},
]


async def answers(conn: Any, tenant: str) -> list[Any]:
    """Every query's ids, paged two at a time, with and without the mine scope, and single fetches."""
    found: list[Any] = []
    for filters in QUERIES:
        for authority in (None, f"account:{HOME}|app"):
            query = StatementQuery(limit=2, **filters)
            pages, after = [], None
            while True:
                page, after, more = await query_statements(conn, tenant, query, after_position=after, limit=2,
                                                           authority=authority)
                pages.append([msgspec.json.decode(b)["id"] for b in page])
                if not more:
                    break
            found.append((filters, authority, pages))
    for statement, _ in bodies():
        for voided in (False, True):
            for authority in (None, f"account:{HOME}|app"):
                stored = await get_statement(conn, tenant, uuid.UUID(statement["id"]), voided=voided,
                                             authority=authority)
                found.append(None if stored is None else msgspec.json.decode(stored)["id"])
    return found


async def test_a_store_of_the_old_schema_answers_as_a_new_one(database_url: str, tmp_path: Path) -> None:
    # The statements as the writer stored them before 0003 (the read model kept
    # the JSON, and no authority key): each migration since converts them.
    early = tmp_path / "early"
    early.mkdir()
    for migration in list_migrations():
        if migration.version < 3:
            (early / migration.path.name).write_text(migration.sql())
    await apply_migrations(database_url, early)
    conn = await asyncpg.connect(database_url)
    start = datetime(2024, 1, 1, tzinfo=timezone.utc)
    try:
        position = 0
        for statement, authority in bodies():
            [s] = prepare_statements([statement], version="1.0.3", authority=authority, new_id=uuid.uuid4)
            position += 1
            stored = start + timedelta(seconds=position)
            payload = finalize_statement(s.body, stored)
            keys = [k for k in filter_keys(s) if not k.startswith("U:")]
            await conn.execute("INSERT INTO events VALUES ($1, $2, 'old', 'statement', $3, $4, $5, $6, $7)",
                               position, uuid.uuid4(), s.statement_id, stored, payload, b"\x00" * 32, b"\x01" * 32)
            await conn.execute(
                "INSERT INTO statements (tenant, statement_id, position, stored, body, verb_id, filter_keys,"
                " registration, voids, statement_ref) VALUES ('old', $1, $2, $3, $4, $5, $6, $7, $8, $9)",
                s.statement_id, position, stored, payload, s.verb_id, keys, s.registration, s.voids,
                s.statement_ref)
            if s.voids is not None:
                await conn.execute("UPDATE statements SET voided = true WHERE statement_id = $1", s.voids)
        await conn.execute("UPDATE log_head SET position = $1, hash = $2, stored = $3",
                           position, b"\x01" * 32, stored)
        await apply_migrations(database_url)
        columns = {r["column_name"] for r in await conn.fetch(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'statements'")}
        assert {"filter_keys", "verb_id"}.isdisjoint(columns) and {"verb_key", "authority_key"} <= columns
        # the events' unique constraints went (0092, 0093): only the position is their key
        assert await conn.fetchval(
            "SELECT count(*) FROM pg_constraint WHERE conrelid = 'events'::regclass AND contype = 'u'") == 0
    finally:
        await conn.close()
    # The same statements through today's writer, in another tenant.
    pool = await create_pool(database_url, min_size=1, max_size=2)
    try:
        writer = StatementWriter(pool, wait_ms=0.0)
        await writer.start()
        for statement, authority in bodies():
            await writer.append("new", prepare_statements([statement], version="1.0.3", authority=authority,
                                                          new_id=uuid.uuid4))
        await writer.close()
        old, new = await answers(pool, "old"), await answers(pool, "new")
        assert old == new
        # and they are the answers: a few spelled out
        by_filters = {(repr(f), a): pages for f, a, pages in old[: 2 * len(QUERIES)]}
        ids = [s["id"] for s, _ in bodies()]
        assert by_filters[(repr({"agent": "mbox:mailto:learner1@example.com"}), None)] == [
            [ids[13], ids[10]], [ids[7], ids[4]]]  # 1 is voided, and 13 (voiding it) refers to it
        assert by_filters[(repr({"verb": VERBS[0]}), f"account:{HOME}|app")] == [
            [ids[12], ids[10]], [ids[6], ids[2]]]  # 12 refers to 0 (did); 0, 4, 8 by the other app
        # A second statement with an id already stored is still refused.
        pool_writer = StatementWriter(pool, wait_ms=0.0)
        await pool_writer.start()
        try:
            duplicate = body(3, verb={"id": "http://example.com/v/other"})
            try:
                await pool_writer.append("old", prepare_statements([duplicate], version="1.0.3",
                                                                   authority=AUTHORITY, new_id=uuid.uuid4))
            except Exception as exc:  # noqa: BLE001 - the 409 of a different statement under the same id
                assert "different content" in str(exc)
            else:
                raise AssertionError("a different statement under a stored id was accepted")
        finally:
            await pool_writer.close()
        assert await pool.fetchval("SELECT count(*) FROM events WHERE tenant = 'old'") == len(bodies())
    finally:
        await pool.close()


async def test_statements_committed_while_0092_runs_are_kept(database_url: str, tmp_path: Path) -> None:
    # A replica of the old code appends while another starts with 0092 (a
    # rolling upgrade, or `lrs migrate` with the service up): the old
    # writer holds the log head and has written its rows, not committed.
    # The migration must copy them, not drop them with the old table.
    before = tmp_path / "before"
    before.mkdir()
    for migration in list_migrations():
        if migration.version < 92:
            (before / migration.path.name).write_text(migration.sql())
    await apply_migrations(database_url, before)
    writer = await asyncpg.connect(database_url)
    watcher = await asyncpg.connect(database_url)
    try:
        statement, authority = bodies()[0]
        [s] = prepare_statements([statement], version="1.0.3", authority=authority, new_id=uuid.uuid4)
        stored = datetime(2024, 1, 1, tzinfo=timezone.utc)
        payload = finalize_statement(s.body, stored)
        transaction = writer.transaction()
        await transaction.start()
        await writer.execute("SELECT position FROM log_head WHERE singleton FOR UPDATE")
        await writer.execute("INSERT INTO events VALUES (1, $1, 'old', 'statement', $2, $3, $4, $5, $6)",
                             uuid.uuid4(), s.statement_id, stored, payload, b"\x00" * 32, b"\x01" * 32)
        await writer.execute(
            "INSERT INTO statements (tenant, statement_id, position, stored, verb_id, filter_keys)"
            " VALUES ('old', $1, 1, $2, $3, $4)",
            s.statement_id, stored, s.verb_id, filter_keys(s))
        await writer.execute("UPDATE log_head SET position = 1, hash = $1, stored = $2", b"\x01" * 32, stored)
        migrating = asyncio.create_task(apply_migrations(database_url))
        for _ in range(500):  # until the migration waits for the writer's locks
            if await watcher.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND pid <> $1"
                " AND datname = current_database()",
                writer.get_server_pid()):
                break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError("the migration never waited for the writer")
        await transaction.commit()
        await migrating
        assert await watcher.fetchval("SELECT count(*) FROM statements WHERE tenant = 'old'") == 1
        assert await get_statement(watcher, "old", s.statement_id, voided=False) is not None
    finally:
        await writer.close()
        await watcher.close()
