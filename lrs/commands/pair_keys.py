"""``lrs backfill-pair-keys``: give Statements stored before migration 0141
their activity + verb keys (:mod:`lrs.store.pair_keys`), so that pages of
activity + verb walk that key over the whole log."""

from __future__ import annotations

import argparse
import sys

from lrs.commands.common import command_pool, load_settings, progress_bar, run_async, setup


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "backfill-pair-keys",
        help="give Statements stored before migration 0141 their activity + verb keys",
        description=(
            "Migration 0141 gave the activity + verb filter a key of its own for Statements stored from then "
            "on; pages read older Statements as before, more slowly. This reads each older Statement (newest "
            "first, --batch positions a step), writes its keys and those of the Statements its StatementRef "
            "chain reaches, and moves the low-water below them. Each step briefly holds the log head (ingest "
            "waits for it); stopping it at any point leaves the store correct, and running it again goes on "
            "where it stopped."
        ),
    )
    parser.add_argument("--batch", type=int, default=5000, help="log positions a step (default: 5000)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar even on a terminal")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    if args.batch < 1:
        print("lrs backfill-pair-keys: --batch must be at least 1", file=sys.stderr)
        return 2
    settings = load_settings()
    setup(settings, one_shot=True)

    async def main() -> int:
        from lrs.store.pair_keys import LowWaterMoved, backfill_pair_keys, low_water

        async with command_pool(settings, application_name="lrs-backfill-pair-keys", max_size=1,
                                migrate=False) as pool:
            if await low_water(pool) is None:
                print("lrs backfill-pair-keys: the database is not migrated (run `lrs migrate`)", file=sys.stderr)
                return 2
            try:
                with progress_bar("positions", "pair keys") as progress:
                    written = await backfill_pair_keys(
                        pool, batch=args.batch, progress=None if args.no_progress else progress)
            except LowWaterMoved as exc:
                print(f"lrs backfill-pair-keys: {exc}", file=sys.stderr)
                return 1
        print(f"wrote {written} pair-key row(s); every Statement has its activity + verb key", file=sys.stderr)
        return 0

    return run_async(main)
