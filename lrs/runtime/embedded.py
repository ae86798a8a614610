"""The embedded default: private servers for whatever is not configured.

``lrs serve`` without ``LRS_DATABASE_URL`` starts its own PostgreSQL under
``<LRS_DATA_DIR>/postgres`` (database ``lrs``); without ``LRS_NATS_URL`` its
own nats-server with JetStream under ``<LRS_DATA_DIR>/nats``.  Both stop when
the context exits, and both die with the process if it is killed.
"""

from __future__ import annotations

import contextlib
from typing import AsyncIterator

import asyncpg
import structlog

from lrs.config import Settings
from lrs.runtime.nats import EmbeddedNats
from lrs.runtime.postgres import EmbeddedPostgres

log = structlog.get_logger(__name__)

DATABASE_NAME = "lrs"


async def ensure_database(server_url: str, name: str) -> None:
    """Create database ``name`` on the server at ``server_url`` if it is missing."""
    conn = await asyncpg.connect(server_url)
    try:
        if await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            return
        quoted = '"' + name.replace('"', '""') + '"'
        try:
            await conn.execute(f"CREATE DATABASE {quoted}")
        except asyncpg.DuplicateDatabaseError:
            return  # created concurrently
        log.info("database_created", database=name)
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def embedded_services(settings: Settings) -> AsyncIterator[tuple[str, str]]:
    """Yield ``(database_url, nats_url)``, starting private servers as needed."""
    async with contextlib.AsyncExitStack() as stack:
        database_url = settings.database_url
        if database_url is None:
            postgres = EmbeddedPostgres(settings.data_dir / "postgres")
            await postgres.start()
            stack.push_async_callback(postgres.stop)
            await ensure_database(postgres.url, DATABASE_NAME)
            database_url = postgres.url_for(DATABASE_NAME)
            log.info("embedded_postgres", url=database_url)

        nats_url = settings.nats_url
        if nats_url is None:
            nats_server = EmbeddedNats(settings.data_dir / "nats")
            await nats_server.start()
            stack.push_async_callback(nats_server.stop)
            nats_url = nats_server.url_for("service")  # relay and projection: lrs.nats_permissions
            log.info("embedded_nats", url=nats_server.anonymous_url)

        yield database_url, nats_url
