"""Helpers shared by subcommands: settings, logging, event loop, database access.

This is the public API for command-line plug-ins: the commands of
``projections`` and ``connectors`` use it as the core's own do (load the
settings, set up logging, run on the event loop, open a migrated pool, show
progress).  It imports nothing from the plug-ins, and what it offers keeps
its signatures; anything else under ``lrs.commands`` is the core's own.
"""

from __future__ import annotations

import asyncio
import dataclasses
import contextlib
import gc
import getpass
import os
import signal
import socket
import sys
from importlib.resources.abc import Traversable
from typing import TYPE_CHECKING, AsyncIterator, Awaitable, Callable, Iterator, Sequence, TypeVar

from lrs.config import Settings
from lrs.logs import configure_logging

if TYPE_CHECKING:
    import asyncpg

T = TypeVar("T")


def load_settings() -> Settings:
    """The settings from LRS_* variables; a bad one raises :class:`ConfigError`,
    which ``lrs`` reports as one line naming the command run (exit status 2)."""
    return Settings.from_env()


def stop_signals() -> tuple[signal.Signals, ...]:
    """The signals that stop a long-running command (serve, relay, project)
    gracefully: SIGTERM, and SIGINT (Ctrl-C) unless the process started with
    it ignored, as ``lrs serve``'s supervised children do
    (lrs.runtime.workers.leave_ctrl_c_to_the_supervisor): their supervisor
    stops them, in order."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        return (signal.SIGTERM,)
    return (signal.SIGTERM, signal.SIGINT)


def run_async(main: Callable[[], Awaitable[T]]) -> T:
    """Runs ``main`` on uvloop when it is available."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on POSIX
        return asyncio.run(main())
    return uvloop.run(main())


# Cyclic garbage collection thresholds for long-running services (defaults:
# 700, 10, 10).  Handling a request allocates thousands of short-lived
# containers (decoded statements) that reference counting frees; with the
# defaults the collector ran every few statements and took a tenth of an
# HTTP worker's CPU.  The young threshold counts objects allocated less those
# freed, so it must lie well above what the requests in flight hold while
# they wait for their group commit: at 20,000 a worker's eight requests of
# 100 sealed Statements (~2,900 objects each, ~2,500 clear) crossed it, and
# its young collections, each visiting every object in flight, ran every few
# requests: 10.4 µs a statement sealed against 0.8 clear (docs/privacy.md,
# "Where sealing's cost goes in the whole service (branch seal-gap)").
SERVICE_GC_THRESHOLDS = (100_000, 20, 20)


def settle_heap() -> None:
    """Call once a service has started: what exists now lives as long as the
    process, so the collector stops scanning it (``gc.freeze``), and it runs
    less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*SERVICE_GC_THRESHOLDS)


def setup(settings: Settings, *, one_shot: bool = False) -> None:
    """Logging at ``settings.log_level``.  ``one_shot``: a command that runs
    once and answers with its own line (``lrs audit anchor``, ``lrs replay``,
    ``lrs erase``, ...), whose info lines (the embedded PostgreSQL started, a
    projection replayed, a learner erased) would only follow that answer on
    stderr as JSON: they show when LRS_LOG_LEVEL asks for them; warnings and
    errors always do."""
    level = settings.log_level
    if one_shot and not os.environ.get("LRS_LOG_LEVEL"):
        level = "warning"
    configure_logging(level)


@contextlib.asynccontextmanager
async def database_url(settings: Settings) -> AsyncIterator[str]:
    """The configured database, or the embedded one under LRS_DATA_DIR."""
    if settings.database_url:
        yield settings.database_url
        return
    from lrs.runtime.embedded import DATABASE_NAME, embedded_services
    from lrs.runtime.postgres import running_server_url

    running = running_server_url(settings.data_dir / "postgres", DATABASE_NAME)
    if running is not None:  # a running `lrs serve` owns the embedded server
        yield running
        return

    only_db = dataclasses.replace(settings, nats_url="unused://")
    async with embedded_services(only_db) as (db_url, _nats):
        yield db_url


@contextlib.contextmanager
def reaching_database(url: str) -> Iterator[None]:
    """Connecting to the database at ``url``: a failure to reach it or log in
    is the one-line :func:`lrs.startup.database_unreachable`."""
    import asyncpg

    from lrs.startup import database_unreachable

    try:
        yield
    except (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise database_unreachable(url, exc) from exc


@contextlib.asynccontextmanager
async def command_pool(
    settings: Settings,
    *,
    application_name: str,
    max_size: int = 2,
    migrate: bool = True,
    migrations: Sequence[Traversable] = (),
) -> AsyncIterator["asyncpg.Pool"]:
    """A small pool on the configured (or embedded) database for one command;
    with ``migrate``, the core's migrations and ``migrations`` (the
    plugged-in parts' directories: ``args.migrations``, set by the
    composition root) are applied first."""
    from lrs.store.migrations import apply_migrations
    from lrs.store.pool import create_pool

    async with database_url(settings) as url:
        with reaching_database(url):
            pool = await create_pool(url, min_size=1, max_size=max_size, application_name=application_name)
        try:
            if migrate:
                await apply_migrations(pool, also=migrations)
            else:
                await _holds_the_log(pool, url)
            yield pool
        finally:
            await pool.close()


async def _holds_the_log(pool: "asyncpg.Pool", url: str) -> None:
    """A command that reads without migrating (an auditor's) on a database
    the service never set up gets one line, not the traceback of a missing
    table: a setting that names the wrong database (exit status 2)."""
    from lrs.config import ConfigError
    from lrs.url_redaction import redact_url

    if await pool.fetchval("SELECT to_regclass('log_head')") is None:
        raise ConfigError(f"LRS_DATABASE_URL: the database {redact_url(url)} is not migrated, it holds no event log "
                          "(check that it names the LRS's database; `lrs migrate` or `lrs serve` makes the log in a new one)")


@contextlib.contextmanager
def progress_bar(unit: str, desc: str) -> Iterator[Callable[[int, int], None]]:
    """A tqdm bar on a terminal (silent otherwise), driven by ``progress(done, total)``."""
    from tqdm import tqdm

    from lrs.logs import lines_written_by

    on_terminal = sys.stderr.isatty()
    # On a terminal a log line meanwhile goes above the bar, not into it.
    above_bar = lines_written_by(lambda text: tqdm.write(text, file=sys.stderr, end="")) if on_terminal \
        else contextlib.nullcontext()
    with tqdm(unit=unit, disable=not on_terminal, desc=desc) as bar, above_bar:

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        yield progress


def login_name() -> str:
    """Who runs this command: the login name, or the uid when the system
    has no name for it (a container's user without a passwd entry)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


def cli_runner() -> str:
    """``cli:<login name>@<host>``, as a verify run records who ran it."""
    return f"cli:{login_name()}@{socket.gethostname()}"
