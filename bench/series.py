"""Series benchmark: 24 monthly points of a ministry of 100,000 rostered learners.

Starts a private PostgreSQL (lrs.runtime), applies the migrations, and fills
the tables the series reads straight with COPY (the bench measures the
query, not loading): a ministry with ``--agencies`` agencies of
``--units-per-agency`` units, ``--learners`` learners with memberships from
2024-2025 (a tenth moved to another unit in 2025, a fiftieth ended, a
twentieth with a superseded, retroactively rewritten row), and
certifications for ``--certified-share`` of them earned in 2025-2026 (known
0-30 days later) plus in-progress rows, and ``--dropped-share`` of the
learners erased and dropped from the totals (units_dropped_learners,
LRS_ERASED_LEARNERS_IN_TOTALS=drop: the series leave them out).  Then it times
``projections.competency.series.unit_series`` (what
``GET /competency/units/{unit}/series`` answers) for the ministry with its
descendants, 24 months, on each clock, ``--runs`` times after two warm-up
runs, and one agency.  With descendants the series sums the per-day deltas
the triggers keep (0114_series_deltas.sql); the bench fills the tables in
bulk without the triggers and counts the deltas once (``recompute_s``), as a
replay does.

Writes bench/results/series-<UTC time>.json with the machine's load.

    python bench/series.py
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lrs.runtime.embedded import ensure_database  # noqa: E402
from lrs.runtime.postgres import EmbeddedPostgres  # noqa: E402
from lrs.service import migrate  # noqa: E402
from projections.competency.catalog import load_catalog  # noqa: E402
from projections.competency.series import unit_series  # noqa: E402
from bench.run_record import add_result_options, load_average, write_result  # noqa: E402
TENANT = "default"
START = datetime(2024, 1, 1, tzinfo=timezone.utc)


def _moment(rng: random.Random, first: datetime, days: int) -> datetime:
    return first + timedelta(days=rng.randrange(days), seconds=rng.randrange(86_400))


def roster_rows(args: argparse.Namespace, rng: random.Random) -> tuple[list, list, list, list, list]:
    units = [(TENANT, "ministry", None, "ministry", "Ministry")]
    leaves = []
    for a in range(args.agencies):
        agency = f"agency-{a:03d}"
        units.append((TENANT, agency, "ministry", "agency", f"Agency {a}"))
        for u in range(args.units_per_agency):
            leaves.append(f"{agency}-unit-{u:02d}")
            units.append((TENANT, leaves[-1], agency, "unit", f"Unit {a}.{u}"))
    tree = []
    parents = {u[1]: u[2] for u in units}
    for unit_id in parents:
        depth, current = 0, unit_id
        while current is not None:
            tree.append((TENANT, current, unit_id, depth))
            current, depth = parents[current], depth + 1
    loaded = datetime(2024, 1, 1, tzinfo=timezone.utc)
    memberships, certifications, dropped = [], [], []
    erasures = random.Random(args.seed + 1)  # its own draws: the rest of the data is the same for any share
    for n in range(args.learners):
        learner = f"mbox:mailto:official{n}@ministry.example.gov.vn"
        if erasures.random() < args.dropped_share:
            dropped.append((TENANT, learner, n + 10))
        start = _moment(rng, START, 730)
        unit = rng.choice(leaves)
        roll = rng.random()
        if roll < 0.1:  # moved in 2025
            moved = _moment(rng, datetime(2025, 1, 1, tzinfo=timezone.utc), 365)
            start = min(start, moved - timedelta(days=1))
            memberships.append((TENANT, learner, unit, start, moved, 1, loaded, None, None))
            memberships.append((TENANT, learner, rng.choice(leaves), moved, None, 1, loaded, None, None))
        elif roll < 0.12:  # left
            memberships.append((TENANT, learner, unit, start, start + timedelta(days=200), 1, loaded, None, None))
        elif roll < 0.17:  # rewritten retroactively: the open row superseded by an ended one
            rewritten = datetime(2025, 9, 1, tzinfo=timezone.utc)
            memberships.append((TENANT, learner, unit, start, None, 1, loaded, 2, rewritten))
            memberships.append((TENANT, learner, unit, start, start + timedelta(days=100), 2, rewritten, None, None))
        else:
            memberships.append((TENANT, learner, unit, start, None, 1, loaded, None, None))
        draw = rng.random()
        if draw < args.certified_share:
            earned = _moment(rng, datetime(2025, 1, 1, tzinfo=timezone.utc), 700)
            certifications.append((TENANT, learner, args.program, args.version, True, earned, [],
                                   earned + timedelta(days=rng.randrange(31))))
        elif draw < args.certified_share + 0.2:
            certifications.append((TENANT, learner, args.program, args.version, False, None, [], None))
    return units, tree, memberships, certifications, dropped


async def fill(url: str, args: argparse.Namespace) -> None:
    rng = random.Random(args.seed)
    units, tree, memberships, certifications, dropped = roster_rows(args, rng)
    conn = await asyncpg.connect(url)
    try:
        # bulk rows: the per-row triggers that keep the series deltas are
        # skipped, and the deltas are counted once after (as after a replay)
        await conn.execute("SET session_replication_role = replica")
        await conn.copy_records_to_table("units", records=units, columns=["tenant", "unit_id", "parent_id", "kind", "name"])
        await conn.copy_records_to_table("unit_tree", records=tree, columns=["tenant", "ancestor_id", "unit_id", "depth"])
        await conn.copy_records_to_table("roster_memberships", records=memberships, columns=[
            "tenant", "learner", "unit_id", "valid_from", "valid_to", "recorded_position", "recorded_at",
            "superseded_position", "superseded_at"])
        await conn.copy_records_to_table("competency_certifications", records=certifications, columns=[
            "tenant", "learner", "program", "program_version", "earned", "earned_at", "statement_ids", "known_at"])
        await conn.copy_records_to_table("units_dropped_learners", records=dropped,
                                         columns=["tenant", "learner", "erased_position"])
        await conn.execute("RESET session_replication_role")
        started = time.perf_counter()
        await conn.execute("SELECT series_recompute()")
        args.recompute_s = round(time.perf_counter() - started, 2)
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


async def time_series(pool: asyncpg.Pool, program, unit: str, clock: str, runs: int) -> dict:
    seconds = []
    answer = None
    for i in range(runs + 2):
        started = time.perf_counter()
        answer = await unit_series(pool, TENANT, unit, program=program, descendants=True, first=date(2025, 1, 1),
                                   last=date(2026, 12, 31), interval="month", clock=clock)
        if i >= 2:  # two warm-up runs
            seconds.append(time.perf_counter() - started)
    assert answer is not None and len(answer["points"]) == 24
    last = answer["points"][-1]
    return {
        "unit": unit, "clock": clock, "runs": runs, "points": len(answer["points"]),
        "ms": {"p50": round(statistics.median(seconds) * 1000, 1),
               "p95": round(sorted(seconds)[int(0.95 * (len(seconds) - 1))] * 1000, 1),
               "max": round(max(seconds) * 1000, 1)},
        "last_point": {k: last[k] for k in ("period", "headcount", "certified", "rate")},
    }


async def main_async(args: argparse.Namespace) -> dict:
    (program,) = [p for p in load_catalog().programs]
    args.program, args.version = program.iri, program.version
    work = Path(tempfile.mkdtemp(prefix="lrs-bench-series-", dir="/tmp"))
    pg = EmbeddedPostgres(work / "pg")
    try:
        server = await pg.start()
        await ensure_database(server, "lrs")
        url = pg.url_for("lrs")
        pool = await asyncpg.create_pool(url, min_size=1, max_size=2)
        try:
            await migrate(pool)
            await fill(url, args)
            load_before = load_average()
            results = [await time_series(pool, program, "ministry", clock, args.runs) for clock in ("achieved", "known")]
            results.append(await time_series(pool, program, "agency-000", "achieved", args.runs))
            load_after = load_average()
        finally:
            await pool.close()
    finally:
        await pg.stop()
        shutil.rmtree(work, ignore_errors=True)
    return {
        "benchmark": "series",
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "settings": {k: v for k, v in vars(args).items() if k not in ("program", "version", "no_write", "label")},
        "target_ms": 200,
        "results": results,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load_before": load_before,
                    "load_after": load_after, "note": "shared machine: other work ran at the same time"},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--learners", type=int, default=100_000)
    parser.add_argument("--agencies", type=int, default=20)
    parser.add_argument("--units-per-agency", type=int, default=10)
    parser.add_argument("--certified-share", type=float, default=0.6)
    parser.add_argument("--dropped-share", type=float, default=0.01, help="learners erased and dropped from the totals")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    add_result_options(parser, note=False)
    args = parser.parse_args(argv)
    result = asyncio.run(main_async(args))
    print(json.dumps(result, indent=2))
    if not args.no_write:
        write_result(result, "series", args.label)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
