"""Migrations apply once, in order, even with concurrent starters."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from lrs.store.migrations import apply_migrations, list_migrations

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
    with pytest.raises(asyncpg.PostgresError):
        await apply_migrations(database_url, tmp_path)
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
