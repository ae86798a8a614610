"""Apply the numbered SQL files in ``schemas/postgres/`` in order.

Each file runs in its own transaction together with its row in
``schema_migrations``.  A session advisory lock makes concurrent starters
safe: the second one waits, then finds nothing left to do.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib.resources.abc import Traversable

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

_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


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


def list_migrations(directory: Traversable = POSTGRES_MIGRATIONS) -> list[Migration]:
    """The migration files in version order; a malformed or repeated number is an error."""
    migrations: dict[int, Migration] = {}
    found = files_named(directory, ".sql")
    if not found:
        raise ValueError(f"no migration files in {directory}: the installation is incomplete; reinstall lrs")
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
) -> list[int]:
    """Apply the pending migrations; returns the versions applied by this call.

    ``target`` is a database URL, a connection or a pool.
    """
    if isinstance(target, str):
        conn = await asyncpg.connect(target)
        try:
            return await _apply(conn, directory)
        finally:
            await conn.close()
    if isinstance(target, asyncpg.Pool):
        async with target.acquire() as conn:
            return await _apply(conn, directory)
    return await _apply(target, directory)


async def _apply(conn: asyncpg.Connection, directory: Traversable) -> list[int]:
    migrations = list_migrations(directory)
    await conn.execute(LOCK, MIGRATION_LOCK_KEY)
    try:
        await conn.execute(CREATE_TRACKING_TABLE)
        applied = {row["version"] for row in await conn.fetch(SELECT_APPLIED)}
        done: list[int] = []
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
        return done
    finally:
        await conn.execute(UNLOCK, MIGRATION_LOCK_KEY)
