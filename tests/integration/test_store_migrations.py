"""Migrations apply once, in order, even with concurrent starters."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import asyncpg
import pytest

from lrs.privacy import sealed_text
from lrs.privacy.master import MasterKey
from lrs.store.learner_keys import LearnerKeys
from lrs.store.migrations import MigrationError, apply_migrations, list_migrations

EXPECTED_TABLES = {
    "events", "log_head", "statements", "credentials",
    "relay_checkpoints", "lrs_secrets", "schema_migrations",
}


async def test_migrations_are_idempotent(database_url: str) -> None:
    versions = [m.version for m in list_migrations()]
    assert versions and versions == sorted(versions)
    assert await apply_migrations(database_url) == versions
    assert await apply_migrations(database_url) == []
    conn = await asyncpg.connect(database_url)
    try:
        tables = {r["tablename"] for r in await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        assert EXPECTED_TABLES <= tables
        assert await conn.fetchval("SELECT count(*) FROM schema_migrations") == len(versions)
        head = await conn.fetchrow("SELECT position, hash FROM log_head")
        assert head["position"] == 0 and head["hash"] == b"\x00" * 32
    finally:
        await conn.close()


async def test_concurrent_starters_apply_each_migration_once(database_url: str) -> None:
    results = await asyncio.gather(*(apply_migrations(database_url) for _ in range(4)))
    applied = sorted(v for result in results for v in result)
    assert applied == [m.version for m in list_migrations()]


async def test_a_failing_migration_leaves_no_trace(database_url: str, tmp_path: Path) -> None:
    (tmp_path / "0001_good.sql").write_text("CREATE TABLE good (x int);")
    (tmp_path / "0002_bad.sql").write_text("CREATE TABLE half (x int); SELECT no_such_function();")
    with pytest.raises(MigrationError, match="migration 0002_bad failed: UndefinedFunctionError") as raised:
        await apply_migrations(database_url, tmp_path)
    assert isinstance(raised.value.__cause__, asyncpg.PostgresError)
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SELECT to_regclass('good') IS NOT NULL")
        assert await conn.fetchval("SELECT to_regclass('half') IS NULL")
        assert [r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")] == [1]
    finally:
        await conn.close()


def test_file_names_are_checked(tmp_path: Path) -> None:
    (tmp_path / "1_bad.sql").write_text("")
    with pytest.raises(ValueError, match="0001_name.sql"):
        list_migrations(tmp_path)


async def test_statements_written_before_0005_are_read_from_their_events(database_url: str, tmp_path: Path) -> None:
    """A database that holds statements when 0005 takes the JSON out of the
    read model serves them unchanged afterwards (from the events' payload)."""
    import uuid
    from datetime import datetime, timezone

    from lrs.ingest.prepare import prepare_statements
    from lrs.ingest.query import StatementQuery
    from lrs.store import reader
    from lrs.store.writer import StatementWriter

    early = tmp_path / "early"
    early.mkdir()
    for migration in list_migrations():
        if migration.version < 5:
            (early / migration.path.name).write_text(migration.sql())
    await apply_migrations(database_url, early)
    conn = await asyncpg.connect(database_url)
    try:
        # Written as the writer did before 0005: the read model kept a copy.
        sid = uuid.uuid4()
        payload = b'{"id":"%s","stored":"2024-01-01T00:00:00.000000Z"}' % str(sid).encode()
        stored = datetime(2024, 1, 1, tzinfo=timezone.utc)
        await conn.execute(
            "INSERT INTO events VALUES (1, $1, 't', 'statement', $2, $3, $4, $5, $6)",
            uuid.uuid4(), sid, stored, payload, b"\x00" * 32, b"\x01" * 32,
        )
        await conn.execute(
            "INSERT INTO statements (tenant, statement_id, position, stored, body, verb_id, filter_keys)"
            " VALUES ('t', $1, 1, $2, $3, 'http://example.com/v', '{}')",
            sid, stored, payload,
        )
        await conn.execute("UPDATE log_head SET position = 1, hash = $1, stored = $2", b"\x01" * 32, stored)
        assert await apply_migrations(database_url) == [m.version for m in list_migrations() if m.version >= 5]
        columns = {r["column_name"] for r in await conn.fetch(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'statements'")}
        assert "body" not in columns
        assert await reader.get_statement(conn, "t", sid, voided=False) == payload
        bodies, last, more = await reader.query_statements(conn, "t", StatementQuery(limit=10), limit=10)
        assert (bodies, last, more) == ([payload], 1, False)
    finally:
        await conn.close()
    # And the writer appends after it, reading the stored one as its own.
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:
        writer = StatementWriter(pool)
        await writer.start()
        statement = {"id": str(sid), "actor": {"mbox": "mailto:a@example.com"},
                     "verb": {"id": "http://example.com/v"}, "object": {"id": "http://example.com/a"}}
        prepared = prepare_statements([statement], version="1.0.3", authority={"mbox": "mailto:x@example.com"},
                                      new_id=uuid.uuid4)
        with pytest.raises(Exception, match="different content"):
            await writer.append("t", prepared)
        await writer.close()
    finally:
        await pool.close()


def test_a_directory_without_migrations_is_an_incomplete_installation(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no migration files .* incomplete"):
        list_migrations(tmp_path / "missing")


async def test_the_core_alone_applies_no_projection_sql(database_url: str) -> None:
    """The core's runner applies only its own files; the projections' come
    from their packages, through the composition root."""
    from lrs.service import MIGRATIONS

    core = [m.version for m in list_migrations()]
    plugged = [m.version for m in list_migrations(*MIGRATIONS)]
    # core 0001-0099 and some later numbers given out beside the projections'
    # (0100 and up); one version is never both
    assert core and plugged and min(plugged) >= 100 and not set(core) & set(plugged)
    assert await apply_migrations(database_url) == core
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SELECT to_regclass('projection_checkpoints') IS NULL")
    finally:
        await conn.close()


async def test_a_database_migrated_from_one_directory_upgrades_without_applying_anything_again(
    database_url: str, second_database_url: str, tmp_path: Path
) -> None:
    """Before the projections owned their SQL every file lived in
    schemas/postgres and was applied from there.  Such a database has every
    version recorded: the composition root's migrate finds nothing to do,
    and a fresh database migrated the new way has the same schema."""
    from lrs.contracts import POSTGRES_MIGRATIONS
    from lrs.service import MIGRATIONS, migrate

    flat = tmp_path / "postgres"  # the one directory of the earlier layout
    flat.mkdir()
    everything = list_migrations(POSTGRES_MIGRATIONS, *MIGRATIONS)
    for migration in everything:
        (flat / migration.path.name).write_text(migration.sql())
    assert await apply_migrations(database_url, flat) == [m.version for m in everything]
    conn = await asyncpg.connect(database_url)
    try:
        recorded = [tuple(r) for r in await conn.fetch("SELECT version, name, applied_at FROM schema_migrations ORDER BY 1")]
        assert await migrate(database_url) == []
        assert [tuple(r) for r in await conn.fetch(
            "SELECT version, name, applied_at FROM schema_migrations ORDER BY 1")] == recorded
        old_schema = await _schema(conn)
    finally:
        await conn.close()
    assert await migrate(second_database_url) == [m.version for m in everything]
    conn = await asyncpg.connect(second_database_url)
    try:
        assert await _schema(conn) == old_schema
    finally:
        await conn.close()


async def _schema(conn: asyncpg.Connection) -> list[tuple[str, ...]]:
    columns = await conn.fetch(
        "SELECT table_name, column_name, data_type, is_nullable, coalesce(column_default, '') FROM information_schema.columns"
        " WHERE table_schema = 'public' ORDER BY 1, 2")
    indexes = await conn.fetch("SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1, 2")
    return [tuple(r) for r in columns] + [tuple(r) for r in indexes]


async def test_a_run_analyzes_the_tables_its_migrations_filled(database_url: str, tmp_path: Path) -> None:
    """A backfill leaves planner statistics behind it: right after the run the
    planner knows a rare value is rare (without them it guesses 0.5% of the rows)."""
    (tmp_path / "0001_create.sql").write_text("CREATE TABLE filled (kind text NOT NULL); CREATE TABLE empty (x int);")
    (tmp_path / "0002_backfill.sql").write_text(
        "INSERT INTO filled SELECT CASE WHEN g % 1000 = 0 THEN 'rare' ELSE 'common' END"
        " FROM generate_series(1, 40000) AS g;")
    assert await apply_migrations(database_url, tmp_path) == [1, 2]
    conn = await asyncpg.connect(database_url)
    try:
        analysed = {r["attname"] for r in await conn.fetch(
            "SELECT attname FROM pg_stats WHERE tablename = 'filled'")}
        assert analysed == {"kind"}
        assert 39000 <= await conn.fetchval("SELECT reltuples FROM pg_class WHERE relname = 'filled'") <= 41000
        plan = await conn.fetchval("EXPLAIN (FORMAT JSON) SELECT * FROM filled WHERE kind = 'rare'")
        import json

        estimate = json.loads(plan)[0]["Plan"]["Plan Rows"]
        assert 20 <= estimate <= 80, estimate  # 40 rows are 'rare'
        # a table the run did not fill is left to autovacuum
        assert await conn.fetchval("SELECT last_analyze FROM pg_stat_user_tables WHERE relname = 'empty'") is None
    finally:
        await conn.close()


@pytest.mark.parametrize(
    ("version", "index", "definition"),
    [
        (94, "statements_authority_key_position", "ON statements (authority_key, position)"),
        (98, "statements_tenant_voided_position", "ON statements (tenant, position) WHERE voided"),
    ],
)
async def test_an_index_a_failed_concurrent_build_left_invalid_is_built_again(
    database_url: str, tmp_path: Path, version: int, index: str, definition: str
) -> None:
    # An operator built the index ahead with CREATE INDEX CONCURRENTLY, as
    # the migration suggests, and the build failed half-way: an INVALID
    # index, which no query uses and IF NOT EXISTS alone would keep for good.
    before = tmp_path / "before"
    before.mkdir()
    for migration in list_migrations():
        if migration.version < version:
            (before / migration.path.name).write_text(migration.sql())
    await apply_migrations(database_url, before)
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(f"CREATE INDEX {index} {definition}")
        await conn.execute(f"UPDATE pg_index SET indisvalid = false WHERE indexrelid = '{index}'::regclass")
        assert version in await apply_migrations(database_url)
        assert await conn.fetchval(f"SELECT indisvalid FROM pg_index WHERE indexrelid = '{index}'::regclass")
    finally:
        await conn.close()


async def test_0095_keeps_the_learner_keys_of_a_store_at_0094_and_drops_their_second_index(
    database_url: str, tmp_path: Path
) -> None:
    before = tmp_path / "before"
    before.mkdir()
    for migration in list_migrations():
        if migration.version <= 94:
            (before / migration.path.name).write_text(migration.sql())
    await apply_migrations(database_url, before)
    master = MasterKey(os.urandom(32))
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SELECT to_regclass('learner_keys_live') IS NOT NULL")
        made = await LearnerKeys(conn, master).keys_for_writing("t", ["mbox:mailto:a@example.com"])
        assert 95 in await apply_migrations(database_url)
        assert await conn.fetchval("SELECT to_regclass('learner_keys_live') IS NULL")
        assert [r["indexname"] for r in await conn.fetch(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'learner_keys'")] == ["learner_keys_pkey"]
        # Another process reads the key made before the upgrade and makes no other.
        again = await LearnerKeys(conn, master).keys_for_writing("t", ["mbox:mailto:a@example.com"])
        [(ident, key)] = again.items()
        assert key.generation == made[ident].generation == 1
        plaintext = b'{"name":"x"}'
        sealed = sealed_text.seal_bytes(made[ident], "t", plaintext)
        assert sealed_text.open_text(sealed, {(key.pseudonym, 1): key.cipher}, "t") == plaintext
        assert await conn.fetchval("SELECT count(*) FROM learner_keys") == 1
    finally:
        await conn.close()
