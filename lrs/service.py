"""The composition root: the one place that knows every part of the service.

It lists the projections and connectors this installation runs, builds the
HTTP application with them (:func:`create_app`) and builds the ``lrs``
command line (:func:`build_parser`, :func:`main`).  Nothing else under
``lrs/`` imports ``projections`` or ``connectors``
(tests/unit/test_import_rules.py holds everyone to it): the core hands out
hooks, and this module plugs the parts into them.

To add a projection: give it a package beside ``projections/competency``
with a :class:`projections.contract.Projection`, register it below (its
routes, its digest, its commands), and it inherits the projection contract
test (tests/integration/test_projection_contract.py).
"""

from __future__ import annotations

import argparse
import os
import sys
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import TYPE_CHECKING, Awaitable, Callable, Mapping, NoReturn, Sequence

import connectors.cli
import projections.cli
from lrs import __version__
from lrs.commands import audit, credentials, erase, export, pair_keys, relay, serve
from lrs.commands import migrate as migrate_command
from lrs.config import COMPETENCY_STATE_CACHE_SIZE
from projections import competency, units

if TYPE_CHECKING:
    import asyncpg
    from aiohttp import web

    from lrs.commands.audit import Digest
    from lrs.config import Settings
    from projections.competency.catalog import Catalog
    from projections.contract import Projection

__all__ = ["APP_PLUGINS", "DIGESTS", "MIGRATIONS", "build_parser", "competency_projection", "create_app", "forward_opener", "main", "migrate", "projections_to_run"]

# The parts are imported when they are used, not when the command line is
# built: `lrs --help` and every short command stay quick to start.


def _competency_http(app: web.Application) -> None:
    import projections.http
    from projections.http_requests import DISPLAY_IDS
    from projections.units.display import DisplayIds

    from lrs.http import keys

    settings = app[keys.SETTINGS]
    projections.http.register(
        app, lambda catalog: competency_projection(catalog, cache_size=settings.competency_state_cache_size)
    )
    # Learners shown by their clear identifier, opened from the sealed roster references (docs/privacy.md).
    app[DISPLAY_IDS] = DisplayIds()


async def _competency_digest(pool: asyncpg.Pool) -> tuple[str, int]:
    from projections.competency.store import digest_with_position

    return await digest_with_position(pool)


def _competency_console(app: web.Application) -> None:
    from lrs.http import keys
    from projections.console import CompetencyConsole

    app[keys.CONSOLE_COMPETENCY] = CompetencyConsole()  # what /console reads (lrs/console/ports.py)


# What the HTTP service mounts beyond the xAPI core: /competency/... and the
# runner that keeps the competency projection current while the service runs,
# and the competency projection's reads for the console's pages.
APP_PLUGINS: tuple[Callable[[web.Application], None], ...] = (_competency_http, _competency_console)

# The SQL of the projections' tables, applied with the core's migrations in one
# version order (lrs.store.migrations).
MIGRATIONS: tuple[Traversable, ...] = (competency.MIGRATIONS, units.MIGRATIONS)

# The projections `lrs audit digest` can name: a digest and the position it reflects.
DIGESTS: Mapping[str, Digest] = {"competency": _competency_digest}


def forward_opener(
    pool: asyncpg.Pool, database_url: str | None
) -> Callable[[str, list[bytes]], Awaitable[list[bytes]]]:
    """What ``lrs forward`` opens sealed statements with before it sends them
    (connectors.forward.opening): the service's own opener, the key file
    found as ``lrs serve`` finds it (LRS_PRIVACY_KEY_FILE, else the data
    dir; ``database_url`` is the external PostgreSQL forwarded from, None
    for the embedded one)."""
    from connectors.forward.opening import CannotOpen
    from lrs.config import ConfigError, Settings
    from lrs.privacy.master import PrivacyKeyError
    from lrs.store.statement_opener import StoredStatementOpener

    def key_file() -> Path:
        env = dict(os.environ)
        if database_url:
            env["LRS_DATABASE_URL"] = database_url
        return Settings.from_env(env).privacy_master_key_file

    opener = StoredStatementOpener(pool, key_file)

    async def open_stored(tenant: str, payloads: list[bytes]) -> list[bytes]:
        try:
            return await opener(tenant, payloads)
        except (PrivacyKeyError, ConfigError) as exc:
            raise CannotOpen(str(exc)) from None

    return open_stored


def competency_projection(catalog: Catalog, *, cache_size: int = COMPETENCY_STATE_CACHE_SIZE) -> Projection:
    """The competency projection for ``catalog``; the service's supervisor
    builds it with the installed frameworks, again whenever they change,
    keeping ``cache_size`` learners' states (LRS_COMPETENCY_STATE_CACHE_SIZE)."""
    from projections.competency.store import CompetencyProjection

    return CompetencyProjection(catalog, cache_size=cache_size)


def projections_to_run() -> list[Projection]:
    """Every projection this installation runs, built with the frameworks
    shipped with the code (the contract test runs each of them)."""
    from projections.competency.catalog import load_catalog

    return [competency_projection(load_catalog())]


async def migrate(target: str | asyncpg.Connection | asyncpg.Pool) -> list[int]:
    """Apply the core's migrations and the projections'; the versions applied."""
    from lrs.store.migrations import apply_migrations

    return await apply_migrations(target, also=MIGRATIONS)


def create_app(
    settings: Settings,
    *,
    database_url: str,
    nats_url: str | None,
    shared_log: bool = False,
    embedded: Callable[[], dict[str, str]] | None = None,
) -> web.Application:
    """The service with its projections (see lrs.http.app.create_app)."""
    from lrs.http import app as http_app

    return http_app.create_app(
        settings, database_url=database_url, nats_url=nats_url, shared_log=shared_log, embedded=embedded,
        plugins=APP_PLUGINS, migrations=MIGRATIONS,
    )


class CommandParser(argparse.ArgumentParser):
    """A (sub)command's parser whose errors are one line naming the command,
    as the commands' own errors are: ``lrs export: argument --since: not an
    ISO 8601 time: 'x' (see `lrs export --help`)``, exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see `{self.prog} --help`)\n")


def _command_parser(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The parser of the (sub)command ``args`` chose, e.g. ``lrs frameworks load``'s."""
    while True:
        chooser = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
        chosen = getattr(args, chooser.dest, None) if chooser is not None else None
        if chooser is None or chosen not in chooser.choices:
            return parser
        parser = chooser.choices[chosen]


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(
        prog="lrs",
        description="Event-sourced xAPI Learning Record Store.",
        epilog="Configuration comes from LRS_* environment variables; see docs/operations.md.",
    )
    parser.add_argument("--version", action="version", version=f"lrs {__version__}")
    parser.set_defaults(migrations=MIGRATIONS)  # every command migrates with the projections' SQL
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    # In the order --help lists them.
    serve.register(subparsers, create_app=create_app)
    migrate_command.register(subparsers)
    credentials.register(subparsers)
    relay.register(subparsers)
    export.register(subparsers)
    erase.register(subparsers)
    pair_keys.register(subparsers)
    connectors.cli.register(subparsers, forward_opener=forward_opener)
    projections.cli.register(subparsers)
    audit.register(subparsers, digests=DIGESTS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # named by the command they were given to, not by `lrs`
        _command_parser(parser, args).error(f"unrecognized arguments: {' '.join(unknown)}")
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        return int(handler(args) or 0)
    except KeyboardInterrupt:
        # Ctrl-C (SIGINT): what the command was doing is cleaned up as it
        # unwound (asyncio cancels a command's task, a replay drops its
        # scratch schema and ends its forked workers, which ignore SIGINT);
        # one line, not a traceback, and the shell's status for SIGINT.
        print(f"{_command_parser(parser, args).prog}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        # Causes a person can fix (a bad setting, a data dir in use, a failed
        # migration) get one line naming the command run, e.g. `lrs credentials
        # create:`, as `lrs serve` gives them; anything else keeps its traceback.
        from lrs.config import ConfigError
        from lrs.startup import StartupError, explain
        from lrs.store.migrations import MigrationError

        debug = os.environ.get("LRS_LOG_LEVEL", "").lower() == "debug"
        if debug or not isinstance(exc, ConfigError | StartupError | MigrationError):
            raise
        print(f"{_command_parser(parser, args).prog}: {explain(exc)}", file=sys.stderr)
        return 2 if isinstance(exc, ConfigError) else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
