"""What a group commit's BEGIN round trip of its own costs, client and server.

A group of single-statement requests sends BEGIN (with ``SET LOCAL
plan_cache_mode``), the head lock's call, the INSERT and COMMIT; when the
previous COMMIT began the group's transaction (``COMMIT; BEGIN; SET LOCAL
...``, lrs.store.writer), the BEGIN's round trip is gone.  Whole-service runs
on a busy two-core machine cannot resolve a few µs a statement, so this bench
times the two shapes alone on one connection, with uvloop as the service
runs: ``separate`` (BEGIN, a one-row statement, COMMIT) against ``chained``
(the statement, then COMMIT and the next BEGIN in one round trip), N
transactions each, alternated, and reports the client process's CPU and the
connection's backend's CPU (``/proc``) a transaction::

    .venv/bin/python bench/begin_round_trip.py --url postgresql://postgres@/postgres?host=/path/run --rounds 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import asyncpg
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))
from process_cpu import cpu_s, load_average  # noqa: E402
from run_record import add_result_options, machine, write_result  # noqa: E402

BEGIN = "BEGIN; SET LOCAL plan_cache_mode = force_generic_plan"  # lrs.store.group_commit_sql


async def _timed(conn: asyncpg.Connection, backend: int, shape: str, transactions: int) -> dict[str, float]:
    own, server, wall = time.process_time(), cpu_s(backend), time.perf_counter()
    if shape == "separate":
        for _ in range(transactions):
            await conn.execute(BEGIN)
            await conn.fetchval("SELECT $1::int", 1)
            await conn.execute("COMMIT")
    else:
        await conn.execute(BEGIN)
        for _ in range(transactions):
            await conn.fetchval("SELECT $1::int", 1)
            await conn.execute("COMMIT; " + BEGIN)
        await conn.execute("COMMIT")
    own, server, wall = time.process_time() - own, cpu_s(backend) - server, time.perf_counter() - wall
    return {
        "client_us": own / transactions * 1e6,
        "backend_us": server / transactions * 1e6,
        "wall_us": wall / transactions * 1e6,
    }


async def run(args: argparse.Namespace) -> dict:
    conn = await asyncpg.connect(args.url)
    try:
        backend = await conn.fetchval("SELECT pg_backend_pid()")
        await _timed(conn, backend, "separate", 500)  # warm: prepared statement, caches
        rounds: list[dict] = []
        for index in range(args.rounds):
            for shape in ("separate", "chained"):
                rounds.append({"round": index + 1, "shape": shape,
                               **await _timed(conn, backend, shape, args.transactions),
                               "load_average": load_average()})
    finally:
        await conn.close()
    summary = {
        shape: {key: round(statistics.median(r[key] for r in rounds if r["shape"] == shape), 1)
                for key in ("client_us", "backend_us", "wall_us")}
        for shape in ("separate", "chained")
    }
    return {"benchmark": "begin_round_trip", "machine": machine(), "transactions": args.transactions,
            "rounds": rounds, "median": summary}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True, help="PostgreSQL server URL")
    parser.add_argument("--transactions", type=int, default=5000, help="transactions per shape and round")
    parser.add_argument("--rounds", type=int, default=5)
    add_result_options(parser, label=True, note=False, output=True)
    args = parser.parse_args()
    record = uvloop.run(run(args))
    print(json.dumps(record["median"]))
    if not args.no_write:
        write_result(record, "begin-round-trip", args.label, output=args.output)


if __name__ == "__main__":
    main()
