"""PostgreSQL's time for INSERT_GROUP's REFERRED probe (lrs/store/group_commit_sql.py):
whether a stored Statement refers to one of a group's new ids, for groups of
100 random ids, against a baseline query taking the same parameters.

    nice -n 10 .venv/bin/python bench/referred_probe.py --data /work/benchdata/store

Prints the median execution and planning time (EXPLAIN ANALYZE, one run in
four) and the 10th percentile of the round trip of each; writes nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import bulk_store as gen  # noqa: E402
from lrs.store.group_commit_sql import REFERRED  # noqa: E402

BASELINE = "SELECT cardinality($1::text[]) + cardinality($2::uuid[]) > 0"


async def measure(data: Path, runs: int) -> dict:
    probe = f"SELECT {REFERRED.replace('$3', '$1').replace('$5', '$2')}"
    out: dict = {}
    async with gen.store_database(data) as url:
        conn = await asyncpg.connect(url)
        try:
            for name, sql in (("baseline", BASELINE), ("referred", probe)):
                explain = await conn.prepare(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}")
                statement = await conn.prepare(sql)
                walls, executions, plannings = [], [], []
                for i in range(runs):
                    ids = [uuid.uuid4() for _ in range(100)]
                    started = time.perf_counter()
                    await statement.fetchval([gen.TENANT] * 100, ids)
                    walls.append(time.perf_counter() - started)
                    if i % 4 == 0:
                        plan = json.loads(await explain.fetchval([gen.TENANT] * 100, ids))[0]
                        executions.append(plan["Execution Time"])
                        plannings.append(plan.get("Planning Time", 0.0))
                out[name] = {"execution_ms_p50": round(statistics.median(executions), 3),
                             "planning_ms_p50": round(statistics.median(plannings), 3),
                             "round_trip_ms_p10": round(sorted(walls)[len(walls) // 10] * 1e3, 3)}
        finally:
            await conn.close()
    out["loadavg"] = [round(x, 2) for x in os.getloadavg()]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="a store made by bench/bulk_store.py")
    parser.add_argument("--runs", type=int, default=400, help="groups of 100 ids per query (default: 400)")
    args = parser.parse_args(argv)
    print(json.dumps(asyncio.run(measure(args.data, args.runs))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
