"""The embedded default: private servers for whatever is not configured.

``lrs serve`` without ``LRS_DATABASE_URL`` starts its own PostgreSQL under
``<LRS_DATA_DIR>/postgres`` (database ``lrs``); without ``LRS_NATS_URL`` its
own nats-server with JetStream under ``<LRS_DATA_DIR>/nats``.  Both stop when
the context exits, and both die with the process if it is killed.  Only one
process at a time runs the servers of a data directory (``lrs.lock``), and
``lrs serve`` restarts either server if it dies (``lrs.runtime.supervision``).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import AsyncIterator

import asyncpg
import structlog

from lrs.config import Settings
from lrs.runtime import datadir
from lrs.runtime.nats import EmbeddedNats, ensure_events_stream, find_nats_server
from lrs.runtime.postgres import EmbeddedPostgres, find_bin_dir
from lrs.runtime.supervision import Supervisor
from lrs.startup import StartupError

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


@dataclass(frozen=True, slots=True)
class Embedded:
    """The URLs to use, and the supervisors of whatever servers were started."""

    database_url: str
    nats_url: str
    supervisors: tuple[Supervisor, ...] = ()

    def status(self) -> dict[str, str]:
        """``{"postgres": "running" | "restarting", ...}`` for the embedded servers."""
        return {supervisor.name: supervisor.state for supervisor in self.supervisors}


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


@contextlib.asynccontextmanager
async def embedded_runtime(settings: Settings, *, supervise: bool = False) -> AsyncIterator[Embedded]:
    """Start a private server for each URL not configured, holding the data
    directory (one process at a time); with ``supervise``, restart either if it dies."""
    async with contextlib.AsyncExitStack() as stack:
        database_url, nats_url = settings.database_url, settings.nats_url
        if database_url is not None and nats_url is not None:
            yield Embedded(database_url, nats_url)
            return
        # Every cause of failure that needs no server is checked before one starts.
        stack.enter_context(datadir.hold(settings.data_dir))
        for needed, find in ((database_url is None, find_bin_dir), (nats_url is None, find_nats_server)):
            if needed:
                try:
                    find()
                except RuntimeError as exc:
                    raise StartupError(str(exc)) from exc
        servers: list[tuple[str, EmbeddedPostgres | EmbeddedNats]] = []

        if database_url is None:
            postgres = EmbeddedPostgres(settings.data_dir / "postgres")
            try:
                await postgres.start()
            except Exception as exc:
                await postgres.stop()
                raise StartupError(
                    f"the embedded PostgreSQL did not start: {_first_line(exc)}; see {postgres.log_path}"
                ) from exc
            stack.push_async_callback(postgres.stop)
            await ensure_database(postgres.url, DATABASE_NAME)
            database_url = postgres.url_for(DATABASE_NAME)
            servers.append(("postgres", postgres))
            log.info("embedded_postgres", url=database_url)

        if nats_url is None:
            nats_server = EmbeddedNats(settings.data_dir / "nats")
            try:
                await nats_server.start()
            except Exception as exc:
                raise StartupError(
                    f"the embedded nats-server did not start: {_first_line(exc)}; see {nats_server.log_path}"
                ) from exc
            stack.push_async_callback(nats_server.stop)
            try:
                await ensure_events_stream(nats_server.url, settings.nats_stream_replicas)
            except Exception as exc:
                raise StartupError(f"the events stream could not be set up: {_first_line(exc)}") from exc
            servers.append(("nats", nats_server))
            nats_url = nats_server.url_for("service")  # relay and projection: lrs.nats.permissions
            log.info("embedded_nats", url=nats_server.anonymous_url)

        supervisors = tuple(Supervisor(name, server) for name, server in servers) if supervise else ()
        for supervisor in supervisors:
            supervisor.start()
            stack.push_async_callback(supervisor.stop)  # stops watching before the servers stop
        yield Embedded(database_url, nats_url, supervisors)


@contextlib.asynccontextmanager
async def embedded_services(settings: Settings) -> AsyncIterator[tuple[str, str]]:
    """Yield ``(database_url, nats_url)``, starting private servers as needed."""
    async with embedded_runtime(settings) as embedded:
        yield embedded.database_url, embedded.nats_url
