"""``lrs migrate``: apply the PostgreSQL migrations: the core's (schemas/postgres/) and each projection's."""

from __future__ import annotations

import argparse

from lrs.commands.common import database_url, load_settings, reaching_database, run_async, setup


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "migrate",
        help="apply database migrations",
        description="Apply the migrations (the core's in schemas/postgres/, each projection's in its package) "
        "to LRS_DATABASE_URL (or the embedded database).",
    )
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    settings = load_settings()
    setup(settings, one_shot=True)

    async def main() -> list[int]:
        import asyncpg

        from lrs.store.migrations import apply_migrations

        async with database_url(settings) as url:
            with reaching_database(url):
                conn = await asyncpg.connect(url)
            try:
                return await apply_migrations(conn, also=args.migrations)
            finally:
                await conn.close()

    applied = run_async(main)
    print(f"applied {len(applied)} migration(s)" + (": " + ", ".join(f"{v:04d}" for v in applied) if applied else ""))
    return 0
