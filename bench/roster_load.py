"""Roster load benchmark: seconds to load N learners into a fresh database.

Starts a private PostgreSQL (lrs.runtime), applies the migrations and loads a
roster of one ministry (``--agencies`` agencies of ``--units`` units, the
learners spread over the units; bench/console_tree.py's roster) through
``projections.units.store.load_roster``, as ``lrs roster load`` does, on a
pool with the service's 60 s statement limit.  Then it loads the same roster
again with ``--moved`` of the learners moved to another unit from a later
date (supersede and history rows).  ``--sealed`` loads it as a service with
personal data sealed does (learners by pseudonym key, their keys sealed:
docs/privacy.md), the data keys made by the first load.  ``--explain`` logs every statement slower than
``--explain-ms`` (log_min_duration_statement) and prints them.

Writes bench/results/roster-load-<UTC time>.json with the machine's load.

    python bench/roster_load.py --learners 10000
    python bench/roster_load.py --learners 100000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.console_tree import roster  # noqa: E402
from lrs.runtime.embedded import ensure_database  # noqa: E402
from lrs.runtime.postgres import EmbeddedPostgres  # noqa: E402
from lrs.service import migrate  # noqa: E402
from lrs.store.pool import create_pool  # noqa: E402
from lrs.privacy.master import MasterKey  # noqa: E402
from lrs.store.learner_keys import LearnerKeys  # noqa: E402
from projections.units import store as units  # noqa: E402
from projections.units.roster import Membership, Roster  # noqa: E402

from bench.run_record import add_result_options, branch, load_average, machine, write_result  # noqa: E402


def moved(first: Roster, share: float) -> Roster:
    """The same roster with every ``1/share``-th learner moved to the next unit from 2025-01-01."""
    leaves = sorted({m.unit_id for m in first.memberships})
    since = datetime(2025, 1, 1, tzinfo=timezone.utc)
    step = max(1, round(1 / share)) if share > 0 else 0
    memberships: list[Membership] = []
    for n, m in enumerate(first.memberships):
        if step and n % step == 0:
            other = leaves[(leaves.index(m.unit_id) + 1) % len(leaves)]
            memberships += [Membership(m.learner, m.unit_id, m.valid_from, since), Membership(m.learner, other, since, None)]
        else:
            memberships.append(m)
    return Roster(units=first.units, memberships=tuple(memberships))


async def run(database_url: str, args: argparse.Namespace) -> dict:
    setup = await create_pool(database_url, min_size=1, max_size=1)
    await migrate(setup)
    if args.explain:
        await setup.execute(f"ALTER SYSTEM SET log_min_duration_statement = {args.explain_ms}")
        await setup.execute("SELECT pg_reload_conf()")
    await setup.close()
    # the service's pool: its 60 s statement limit applies
    pool = await create_pool(database_url, min_size=1, max_size=2)
    keys = LearnerKeys(pool, MasterKey(secrets.token_bytes(32))) if args.sealed else None
    figures: dict = {"sealed": args.sealed}
    try:
        first = roster(args.agencies, args.units, args.learners)
        for name, data in (("first_load_s", first), ("reload_moved_s", moved(first, args.moved))):
            started = time.perf_counter()
            try:
                await units.load_roster(pool, "default", data, now=datetime.now(timezone.utc), learner_keys=keys)
                figures[name] = round(time.perf_counter() - started, 1)
            except Exception as exc:  # the statement limit: report it, as the service would fail
                figures[name] = f"failed after {time.perf_counter() - started:.1f} s: {type(exc).__name__} {exc}"
                break
            figures[name.replace("_s", "_memberships")] = len(data.memberships)
        figures["memberships_rows"] = await pool.fetchval("SELECT count(*) FROM roster_memberships")
    finally:
        await pool.close()
    return figures


async def main_async(args: argparse.Namespace) -> dict:
    work = Path(tempfile.mkdtemp(prefix="lrs-bench-roster-", dir="/tmp"))
    pg = EmbeddedPostgres(work / "pg")
    try:
        server = await pg.start()
        await ensure_database(server, "lrs")
        load_before = load_average()
        figures = await run(pg.url_for("lrs"), args)
        if args.explain:
            lines = pg.log_path.read_text(errors="replace").splitlines()
            for i, line in enumerate(lines):
                if "duration:" in line:  # the statement's text follows on the next lines
                    print(" ".join([line, *lines[i + 1 : i + 4]])[: args.explain_chars])
        return {
            "benchmark": "roster load",
            "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "command": "python bench/roster_load.py " + " ".join(sys.argv[1:]),
            "learners": args.learners,
            "units": 1 + args.agencies * (1 + args.units),
            **figures,
            "machine": {
                **machine(load_before=load_before),
                "note": "a shared machine (2 cores, other engineers' tests and benchmarks beside it)",
            },
        }
    finally:
        await pg.stop()
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--learners", type=int, default=10_000, help="rostered learners")
    parser.add_argument("--agencies", type=int, default=20, help="agencies under the ministry")
    parser.add_argument("--units", type=int, default=25, help="units under each agency")
    parser.add_argument("--moved", type=float, default=0.1, help="share of learners moved by the second load")
    parser.add_argument("--sealed", action="store_true", help="as with LRS_SEAL_PERSONAL_DATA on")
    parser.add_argument("--explain", action="store_true", help="print the slow statements")
    parser.add_argument("--explain-ms", type=int, default=1000, help="slow: at least this many ms")
    parser.add_argument("--explain-chars", type=int, default=400, help="characters of each slow statement to print")
    add_result_options(parser, note=False)
    args = parser.parse_args(argv)
    result = asyncio.run(main_async(args))
    print(json.dumps(result, indent=2))
    if not args.no_write:
        write_result(result, "roster-load", args.label or branch() or "unknown")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
