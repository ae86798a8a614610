"""CPU of the group-commit writer and of PostgreSQL per statement at batch 1,
as the HTTP workers drive it: two writers appending to one shared log, each
with 16 callers waiting for their single statement (no HTTP).

It answers what the whole-service bench cannot resolve on a busy machine:
the writer's own CPU (this process) and PostgreSQL's (every process of the
server), counted over the appends only, per statement::

    python bench/writer_plans.py --url postgresql://postgres@/postgres?host=/path/run
    python bench/writer_plans.py --url ... --plan-cache-mode force_generic_plan

Run it with another checkout's venv, from that checkout, for a before/after
(``cd /other/checkout && .venv/bin/python /this/checkout/bench/writer_plans.py``):
the ``lrs`` imported is that checkout's.  ``--postmaster`` is the server's
process id (default: the one that owns the database's data directory, asked
of the server).  ``--plan-cache-mode`` sets the pools' session default (the
writer's own transactions override it, as lrs.store.group_commit_sql.begin_group says).
``--prefill`` writes that many statements first (batches of 100, then
ANALYZE), so that the timed appends run on a store of that size: the writer
plans per execution only while the log is short (begin_group).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import resource
import sys
import time
import uuid
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from process_cpu import load_average, tree_cpu_s  # noqa: E402
from store_writer import AUTHORITY, sample_statement, scratch_database  # noqa: E402

from lrs.ingest.prepare import prepare_statements  # noqa: E402
from lrs.store import StatementWriter, create_pool  # noqa: E402
import lrs.store.pool  # noqa: E402


async def run(args: argparse.Namespace) -> dict:
    if args.plan_cache_mode:
        lrs.store.pool.SERVER_SETTINGS["plan_cache_mode"] = args.plan_cache_mode
    async with scratch_database(args.url, "lrs_writer_plans") as url:
        conn = await asyncpg.connect(url)
        postmaster = args.postmaster or int(
            Path(await conn.fetchval("SHOW data_directory"), "postmaster.pid").read_text().split()[0]
        )
        await conn.close()
        if args.prefill:
            await prefill(url, args.prefill)
        batches = [
            prepare_statements([sample_statement(i)], version="1.0.3", authority=AUTHORITY, new_id=uuid.uuid4)
            for i in range(args.statements)
        ]
        pools = [await create_pool(url, min_size=2, max_size=8) for _ in range(args.writers)]
        # each writer's groups on a pool not reset on release, as the service's (lrs.http.app)
        group_pools = [
            await lrs.store.pool.create_statement_pool(url, application_name="lrs-writer", max_size=2)
            for _ in range(args.writers)
        ]
        writers = [
            StatementWriter(pool, wait_ms=args.wait_ms, shared_log=True, group_pool=group_pool)
            for pool, group_pool in zip(pools, group_pools)
        ]
        for writer in writers:
            await writer.start()
        queue = list(reversed(batches))
        latencies: list[float] = []

        async def caller(writer: StatementWriter) -> None:
            client = object()  # a connection of its own
            while queue:
                batch = queue.pop()
                started = time.perf_counter()
                # announced as the HTTP handler does (--announce), or not
                arrival = writer.arrival(client) if args.announce else None
                try:
                    await writer.append("default", batch, defines=True, arrival=arrival)  # the ingest bench's credential defines
                finally:
                    if arrival is not None:
                        arrival.close()
                latencies.append(time.perf_counter() - started)

        await asyncio.sleep(0.3)  # the pools' connections settle
        usage = resource.getrusage(resource.RUSAGE_SELF)
        own, server, wall = time.process_time(), tree_cpu_s(postmaster), time.perf_counter()
        profile = cProfile.Profile() if args.profile else None
        if profile is not None:
            profile.enable()
        await asyncio.gather(*(caller(w) for w in writers for _ in range(args.callers)))
        if profile is not None:
            profile.disable()
            profile.dump_stats(args.profile)
        own, server, wall = time.process_time() - own, tree_cpu_s(postmaster) - server, time.perf_counter() - wall
        after = resource.getrusage(resource.RUSAGE_SELF)
        for writer in writers:
            await writer.close()
        for pool in pools + group_pools:
            await pool.close()
        latencies.sort()
        n = args.statements
        groups = max(1, sum(w.groups_committed for w in writers))
        return {
            "statements": n,
            "statements_per_s": round(n / wall),
            "groups": sum(w.groups_committed for w in writers),
            "groups_chained": sum(getattr(w, "groups_chained", 0) for w in writers),
            # the serial part: the log head lock held, from FOR UPDATE to COMMIT, a group
            "head_lock_ms_per_group": round(
                sum(w.head_lock_seconds for w in writers) / max(1, sum(w.groups_committed for w in writers)) * 1e3, 3
            ),
            "writer_process_cpu_us_per_statement": round(own / n * 1e6, 1),
            "postgresql_cpu_us_per_statement": round(server / n * 1e6, 1),
            # the writer process's CPU split, and how often it left the core, a group
            "writer_process_user_us_per_statement": round((after.ru_utime - usage.ru_utime) / n * 1e6, 1),
            "writer_process_system_us_per_statement": round((after.ru_stime - usage.ru_stime) / n * 1e6, 1),
            "voluntary_switches_per_group": round((after.ru_nvcsw - usage.ru_nvcsw) / groups, 2),
            "involuntary_switches_per_group": round((after.ru_nivcsw - usage.ru_nivcsw) / groups, 2),
            "p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 1),
            "plan_cache_mode": args.plan_cache_mode or "auto",
            "prefill": args.prefill,
            "announce": args.announce,
            "loop": "uvloop" if args.uvloop else "asyncio",
            "callers_per_writer": args.callers,
            "statements_per_group": round(n / groups, 2),
            "transactions_begun_unused": sum(getattr(w, "transactions_begun_unused", 0) for w in writers),
            "load_average_after": load_average(),
        }


async def prefill(url: str, count: int) -> None:
    pool = await create_pool(url, min_size=1, max_size=2)
    writer = StatementWriter(pool, wait_ms=1.0, shared_log=True)
    await writer.start()
    for start in range(0, count, 100):
        batch = prepare_statements([sample_statement(10_000_000 + i) for i in range(start, min(start + 100, count))],
                                   version="1.0.3", authority=AUTHORITY, new_id=uuid.uuid4)
        await writer.append("default", batch, defines=True)
    await writer.close()
    await pool.close()
    conn = await asyncpg.connect(url)
    await conn.execute("ANALYZE")
    await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True, help="PostgreSQL server URL (a scratch database is created)")
    parser.add_argument("--postmaster", type=int, help="the server's process id (default: from its data directory)")
    parser.add_argument("--statements", type=int, default=4000)
    parser.add_argument("--writers", type=int, default=2, help="writers sharing the log (the HTTP workers)")
    parser.add_argument("--callers", type=int, default=16, help="callers per writer, one statement each")
    parser.add_argument("--wait-ms", type=float, default=2.0)
    parser.add_argument("--announce", action="store_true",
                        help="callers announce each request to the writer as the HTTP handler does (StatementWriter.arrival)")
    parser.add_argument("--prefill", type=int, default=0, help="statements written (and analysed) before the timed ones")
    parser.add_argument("--plan-cache-mode", choices=["auto", "force_custom_plan", "force_generic_plan"])
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop, as the service does (lrs.commands.common)")
    parser.add_argument("--profile", help="write a cProfile of the timed appends (this process) to this file")
    args = parser.parse_args()
    if args.uvloop:
        import uvloop
        print(json.dumps(uvloop.run(run(args))))
    else:
        print(json.dumps(asyncio.run(run(args))))


if __name__ == "__main__":
    main()
