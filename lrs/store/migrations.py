"""Apply the numbered SQL files in ``schemas/postgres/`` in order.

Each file runs in its own transaction together with its row in
``schema_migrations``.  A session advisory lock makes concurrent starters
safe: the second one waits, then finds nothing left to do.

The core's files are the only ones applied by default.  The parts plugged
into the service (each projection) own the SQL of their tables, in a
directory of their own; the composition root (lrs/service.py) passes those
directories as ``also``, and their files are applied in one version order
with the core's, under the same lock and in the same ``schema_migrations``
(core 0001-0099, projections 0100 and up, and a few later core numbers
given out between the projections': a version is recorded the same whichever
directory its file lives in, so no two directories share one).

A migration that backfills a table (fills a new one from an old one,
rewrites a column) leaves it without fresh planner statistics: the read
model's plans then rest on default guesses until autovacuum comes round.
So a run that applied anything ends by ANALYZEing every table it grew
(:data:`TABLE_PAGES` before and after: a backfill adds pages, whether it
inserts or rewrites rows).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib.resources.abc import Traversable
from typing import Sequence

import asyncpg

from lrs.contracts import POSTGRES_MIGRATIONS, files_named

# Arbitrary, fixed key of the advisory lock that guards migrations.
MIGRATION_LOCK_KEY = 7_310_561_203_940_117

CREATE_TRACKING_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer     PRIMARY KEY,
    name       text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""
SELECT_APPLIED = "SELECT version FROM schema_migrations"
INSERT_APPLIED = "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)"
LOCK = "SELECT pg_advisory_lock($1)"
UNLOCK = "SELECT pg_advisory_unlock($1)"

# The size in pages of every ordinary table, to find those a run grew.
TABLE_PAGES = """
SELECT c.oid::regclass::text AS name, pg_relation_size(c.oid) / current_setting('block_size')::int AS pages
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg_toast%'
"""

_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


async def analyze_grown(conn: asyncpg.Connection, before: dict[str, int]) -> list[str]:
    """ANALYZE each table larger than it was in ``before`` (its size in pages
    by name; a table missing there is new); returns their names."""
    grown = [row["name"] for row in await conn.fetch(TABLE_PAGES) if row["pages"] > before.get(row["name"], 0)]
    for name in grown:
        await conn.execute(f"ANALYZE {name}")  # a regclass name, quoted by PostgreSQL where needed
    return grown


class MigrationError(RuntimeError):
    """A migration failed; its transaction was rolled back."""

    def __init__(self, migration: "Migration", cause: BaseException) -> None:
        first_line = (str(cause).strip().splitlines() or [""])[0]
        super().__init__(
            f"migration {migration.version:04d}_{migration.name} failed: {type(cause).__name__}: {first_line}"
        )
        self.migration = migration


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    path: Traversable

    def sql(self) -> str:
        return self.path.read_text(encoding="utf-8")


def list_migrations(directory: Traversable = POSTGRES_MIGRATIONS, *also: Traversable) -> list[Migration]:
    """The migration files of ``directory`` and of each of ``also``, in one
    version order; a malformed or repeated number is an error."""
    migrations: dict[int, Migration] = {}
    found: list[Traversable] = []
    for place in (directory, *also):
        files = files_named(place, ".sql")
        if not files:
            raise ValueError(f"no migration files in {place}: the installation is incomplete; reinstall lrs")
        found.extend(files)
    for path in found:
        match = _FILE_NAME.match(path.name)
        if match is None:
            raise ValueError(f"migration file name must look like 0001_name.sql: {path.name}")
        version = int(match.group(1))
        if version in migrations:
            raise ValueError(f"two migrations share version {version}: {path.name}")
        migrations[version] = Migration(version, match.group(2), path)
    return [migrations[v] for v in sorted(migrations)]


async def apply_migrations(
    target: str | asyncpg.Connection | asyncpg.Pool,
    directory: Traversable = POSTGRES_MIGRATIONS,
    *,
    also: Sequence[Traversable] = (),
) -> list[int]:
    """Apply the pending migrations; returns the versions applied by this call.

    ``target`` is a database URL, a connection or a pool; ``also``: the
    migration directories of the plugged-in parts (see the module docstring).
    """
    if isinstance(target, str):
        conn = await asyncpg.connect(target)
        try:
            return await _apply(conn, directory, also)
        finally:
            await conn.close()
    if isinstance(target, asyncpg.Pool):
        async with target.acquire() as conn:
            return await _apply(conn, directory, also)
    return await _apply(target, directory, also)


async def _apply(conn: asyncpg.Connection, directory: Traversable, also: Sequence[Traversable]) -> list[int]:
    migrations = list_migrations(directory, *also)
    await conn.execute(LOCK, MIGRATION_LOCK_KEY)
    try:
        await conn.execute(CREATE_TRACKING_TABLE)
        applied = {row["version"] for row in await conn.fetch(SELECT_APPLIED)}
        before = {row["name"]: row["pages"] for row in await conn.fetch(TABLE_PAGES)}
        done: list[int] = []
        try:
            for migration in migrations:
                if migration.version in applied:
                    continue
                try:
                    async with conn.transaction():
                        await conn.execute(migration.sql())
                        await conn.execute(INSERT_APPLIED, migration.version, migration.name)
                except asyncpg.PostgresError as exc:
                    raise MigrationError(migration, exc) from exc
                done.append(migration.version)
        finally:
            if done:  # those applied before a failure are committed too
                await analyze_grown(conn, before)
        return done
    finally:
        await conn.execute(UNLOCK, MIGRATION_LOCK_KEY)
