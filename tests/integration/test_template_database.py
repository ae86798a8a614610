"""The tests' migrated template (tests/conftest.py) is what the migrations make
of an empty database: a copy of it has the same tables, columns, constraints,
indexes, functions, triggers, views and rows as a database migrated from
empty, so a test given a copy starts where the app's own startup would have
brought it."""

from __future__ import annotations

import asyncpg

from lrs.service import MIGRATIONS, migrate
from lrs.store.migrations import POSTGRES_MIGRATIONS, list_migrations
from tests.conftest import fresh_database, with_database

VERSIONS = [m.version for m in list_migrations(POSTGRES_MIGRATIONS, *MIGRATIONS)]  # the core's and the projections'
CATALOG = {
    "columns": """SELECT table_name, column_name, ordinal_position, data_type, is_nullable, column_default
                  FROM information_schema.columns WHERE table_schema = 'public' ORDER BY 1, 3""",
    "constraints": """SELECT c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid)
                      FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
                      WHERE n.nspname = 'public' ORDER BY 1, 2""",
    "indexes": "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1, 2",
    "functions": """SELECT p.proname, pg_get_function_identity_arguments(p.oid), md5(p.prosrc)
                    FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                    WHERE n.nspname = 'public' ORDER BY 1, 2""",
    "triggers": """SELECT t.tgrelid::regclass::text, t.tgname, pg_get_triggerdef(t.oid)
                   FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
                   WHERE n.nspname = 'public' AND NOT t.tgisinternal ORDER BY 1, 2""",
    "views": "SELECT viewname, definition FROM pg_views WHERE schemaname = 'public' ORDER BY 1",
}


async def _describe(url: str) -> dict[str, list[tuple[object, ...]]]:
    conn = await asyncpg.connect(url)
    try:
        described = {name: [tuple(row) for row in await conn.fetch(query)] for name, query in CATALOG.items()}
        tables = [row["tablename"] for row in await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")]
        for table in tables:
            # applied_at is when each migration ran: the one column that differs by design.
            columns = "version, name" if table == "schema_migrations" else "t"
            rows = await conn.fetch(f'SELECT ({columns})::text AS row FROM "{table}" t ORDER BY 1')
            described[f"rows of {table}"] = [row["row"] for row in rows]
        return described
    finally:
        await conn.close()


async def test_a_copy_of_the_template_is_an_empty_database_after_the_migrations(
    postgres_server: str, migrated_template: str
) -> None:
    async with fresh_database(postgres_server) as migrated, fresh_database(postgres_server, migrated_template) as copy:
        assert await migrate(migrated) == VERSIONS
        assert await migrate(copy) == []  # nothing left to do
        expected, got = await _describe(migrated), await _describe(copy)
        assert expected["columns"] and expected["rows of schema_migrations"]
        assert got == expected


async def test_database_url_is_empty_unless_a_fixture_migrates_it(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == 0
    finally:
        await conn.close()


async def _applied(url: str) -> list[tuple[object, ...]]:
    conn = await asyncpg.connect(url)
    try:
        return [tuple(row) for row in await conn.fetch("SELECT version, applied_at FROM schema_migrations ORDER BY 1")]
    finally:
        await conn.close()  # no session may stay on the template: CREATE DATABASE ... TEMPLATE would refuse


async def test_under_pool_database_url_is_a_copy_of_the_template(
    postgres_server: str, migrated_template: str, database_url: str, pool: asyncpg.Pool
) -> None:
    applied = await _applied(database_url)
    assert [version for version, _ in applied] == VERSIONS
    # The same applied_at: copied from the template, not migrated again.
    assert applied == await _applied(with_database(postgres_server, migrated_template))
