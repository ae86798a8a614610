"""Live apply A/B: ``bench/live_apply_profile.py`` of several checkouts in turn, alternating.

Each run is the checkout's own ``bench/live_apply_profile.py`` (with
``--this-bench``, this one's, told ``--code PATH``) in the checkout's own venv, on one log that ``bench/projection_ab.py`` filled (``--data-dir``), the
order of the sides reversed every other round.  That bench empties the
projection and applies the log again, but runs no migration: before each
run the storage parameters of the competency tables, in each database the
run applies from (``--mix``, ``--log-events``, ``--database`` as the child
reads them), are set as that checkout's migrations set them (each ``ALTER
TABLE competency_... SET (...)`` in its projections/competency/migrations,
after a ``RESET`` of every parameter those tables carry), so a side whose
migration changes a table's fillfactor is measured with it and the other
without.  Prints each run's JSON (with the
load average) and records them all (bench/results/live_apply_ab-<label>-…json).

    python bench/live_apply_ab.py --side start=/work/wt/base --side end=. --data-dir /work/benchdata/apply/ab \\
        --rounds 3 -- --mix all-evidence --warm 70000 --events 30000 --batch 1000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from lrs.runtime.postgres import EmbeddedPostgres  # noqa: E402
from live_apply_profile import arguments, databases  # noqa: E402
from run_record import add_result_options, load_average  # noqa: E402
from tree_runs import write_runs  # noqa: E402

SET_STORAGE = re.compile(r"ALTER TABLE (competency_\w+) SET \(([^)]*)\);")
# The competency tables' storage parameters as they are (whichever side ran last set them).
STORAGE_NOW = r"""
SELECT relname, reloptions FROM pg_class
WHERE relnamespace = 'public'::regnamespace AND relkind = 'r' AND relname LIKE 'competency\_%' AND reloptions IS NOT NULL
"""


def storage_statements(tree: Path) -> list[str]:
    """The statements that give the competency tables the storage parameters ``tree``'s migrations give them."""
    statements = []
    for migration in sorted((tree / "projections" / "competency" / "migrations").glob("*.sql")):
        statements.extend(f"ALTER TABLE {t} SET ({p})" for t, p in SET_STORAGE.findall(migration.read_text()))
    return statements


async def give_storage(conn, tree: Path) -> None:  # type: ignore[no-untyped-def]
    """Give the competency tables of ``conn``'s database the storage
    parameters ``tree``'s migrations give them, and no others."""
    for row in await conn.fetch(STORAGE_NOW):
        names = ", ".join(option.split("=", 1)[0] for option in row["reloptions"])
        await conn.execute(f"ALTER TABLE {row['relname']} RESET ({names})")
    for statement in storage_statements(tree):
        await conn.execute(statement)


def measured_databases(child: list[str]) -> list[str]:
    """The databases live_apply_profile.py applies from, given ``child`` (its options)."""
    return databases(arguments(["--data-dir", "-", *child]))


async def set_storage(data_dir: Path, names: list[str], tree: Path) -> None:
    import asyncpg

    pg = EmbeddedPostgres(data_dir)
    await pg.start()
    try:
        for database in names:
            conn = await asyncpg.connect(pg.url_for(database))
            try:
                await give_storage(conn, tree)
            finally:
                await conn.close()
    finally:
        await pg.stop()


def printed_results(stdout: str) -> list[dict]:
    """The JSON objects live_apply_profile.py printed (one per mix, each opening on a line of its own)."""
    decoder = json.JSONDecoder()
    starts = [m.start() for m in re.finditer(r"^\{$", stdout, re.MULTILINE)]
    return [decoder.raw_decode(stdout, start)[0] for start in starts]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--side", action="append", required=True, metavar="NAME=PATH")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--this-bench", action="store_true",
                        help="run this checkout's live_apply_profile.py for every side, with --code PATH (so "
                             "each statement's backend CPU is measured alike on both)")
    parser.add_argument("child", nargs=argparse.REMAINDER, help="-- then live_apply_profile.py's options")
    add_result_options(parser)
    args = parser.parse_args()
    child = [a for a in args.child if a != "--"]
    sides = [s.split("=", 1) for s in args.side]
    names = measured_databases(child)
    runs = []
    for round_ in range(args.rounds):
        for name, path in (sides if round_ % 2 == 0 else sides[::-1]):
            tree = Path(path).resolve()
            asyncio.run(set_storage(Path(args.data_dir), names, tree))
            bench = (ROOT / "bench" / "live_apply_profile.py", "--code", str(tree)) if args.this_bench else (
                tree / "bench" / "live_apply_profile.py",)
            done = subprocess.run(
                [str(tree / ".venv" / "bin" / "python"), *map(str, bench), "--data-dir", args.data_dir, *child],
                capture_output=True, text=True, check=True,
            )
            for result in printed_results(done.stdout):
                run = {"side": name, "round": round_ + 1, "load": load_average(), **result}
                run.pop("profile", None)
                print(json.dumps({k: v for k, v in run.items() if k != "statements_wall_us_per_event"}), flush=True)
                runs.append(run)
    write_runs("live_apply_ab", args, runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
