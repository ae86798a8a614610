"""The ``lrs`` command line.

Each subcommand lives in its own module and registers itself through a
``register(subparsers)`` function; ``main`` only assembles them.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Sequence

from lrs import __version__

# Modules that contribute subcommands, in the order --help lists them.
COMMAND_MODULES: tuple[str, ...] = (
    "lrs.commands.serve",
    "lrs.commands.migrate",
    "lrs.commands.credentials",
    "lrs.commands.relay",
    "lrs.commands.export",
    "lrs.commands.erase",
    "connectors.cli",
    "projections.cli",
    "lrs.commands.audit",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lrs",
        description="Event-sourced xAPI Learning Record Store.",
        epilog="Configuration comes from LRS_* environment variables; see README.md.",
    )
    parser.add_argument("--version", action="version", version=f"lrs {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                continue  # that capability is not installed in this tree
            raise
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        return int(handler(args) or 0)
    except Exception as exc:
        # Causes a person can fix (a data dir in use, a failed migration) get
        # one line, as `lrs serve` gives them; anything else keeps its traceback.
        from lrs.startup import StartupError, explain
        from lrs.store.migrations import MigrationError

        debug = os.environ.get("LRS_LOG_LEVEL", "").lower() == "debug"
        if debug or not isinstance(exc, StartupError | MigrationError):
            raise
        print(f"lrs {args.command}: {explain(exc)}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
