"""Latency of every statements filter, limit-100 pages, against store size.

Runs on a store built by ``bench/bulk_store.py`` (``--data``: its embedded
PostgreSQL is started here) or on any migrated database (``--url``).  Every
page is read exactly as GET /xapi/statements reads it
(:func:`lrs.store.reader.query_statements` on the service's own pool for
them, :func:`lrs.store.reader.create_read_pool`, whose prepared statements
run generic plans), for filter
values drawn from the statements the generator wrote.

For each filter: ``--queries`` pages one after another (p50, p99), then the
same number spread over ``--clients`` concurrent clients, each with its own
connection.  ``paged`` filters follow the ``more`` cursor: every query reads
page ``--page`` of the sequence (the earlier pages are read first, untimed).
``--explain`` prints each filter's plan as the service runs it (a generic plan,
``EXPLAIN (ANALYZE, BUFFERS)``) instead of timing.

    nice -n 10 .venv/bin/python bench/queries.py --data /work/benchdata/store
    .venv/bin/python bench/queries.py --data /work/benchdata/store --explain --only agent
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import asyncpg
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import bulk_store as gen  # noqa: E402
from lrs.ingest.query import StatementQuery  # noqa: E402
from lrs.store.pool import create_pool, create_statement_pool  # noqa: E402
from lrs.store.pair_keys import PairKeysEverywhere, low_water  # noqa: E402
from lrs.store.page_query import build_page_query  # noqa: E402
from lrs.store.reader import create_read_pool, query_statements  # noqa: E402
from lrs.xapi.identity import ifi_key  # noqa: E402

RESULTS_DIR = ROOT / "bench" / "results"
LIMIT = 100


def _pick(total: int, i: int, salt: int) -> int:
    """The i-th sampled statement number (spread over the whole store)."""
    return int(gen._unit(i * 1000 + salt) * (total - 10))


def _session_statement(total: int, i: int, salt: int) -> dict:
    """A sampled ordinary statement (not voiding, not a comment)."""
    n = _pick(total, i, salt)
    while "registration" not in gen.statement(n).get("context", {}):
        n += 1
    return gen.statement(n)


def filters(total: int, stored: tuple[datetime, datetime]) -> dict[str, Callable[[int], StatementQuery]]:
    """Each filter as a function of the sample number."""
    first, last = stored

    def when(share: float) -> datetime:
        return first + (last - first) * share

    def agent(i: int) -> str:
        return ifi_key(_session_statement(total, i, 1)["actor"])  # type: ignore[return-value]

    def instructor(i: int) -> str:
        return ifi_key(gen.instructor(i % gen.INSTRUCTORS))  # type: ignore[return-value]

    def unit(i: int) -> str:
        return _session_statement(total, i, 2)["object"]["id"]

    def course(i: int) -> str:
        return _session_statement(total, i, 3)["context"]["contextActivities"]["parent"][0]["id"]

    def registration(i: int) -> Any:
        import uuid

        return uuid.UUID(_session_statement(total, i, 4)["context"]["registration"])

    verbs = ["passed", "failed", "launched", "terminated", "answered", "completed"]
    q = StatementQuery
    return {
        "none": lambda i: q(limit=LIMIT),
        "ascending": lambda i: q(limit=LIMIT, ascending=True),
        "agent": lambda i: q(limit=LIMIT, agent=agent(i)),
        "agent_ascending": lambda i: q(limit=LIMIT, agent=agent(i), ascending=True),
        "agent_related": lambda i: q(limit=LIMIT, agent=instructor(i), related_agents=True),
        # every Statement's authority as a related agent: its index's walk
        # since branch b100-rows (no 'a:' row of its own), its 'a:' rows before
        "authority_related": lambda i: q(limit=LIMIT, agent=ifi_key(gen.AUTHORITY), related_agents=True),
        "verb": lambda i: q(limit=LIMIT, verb=gen.VERB + verbs[i % len(verbs)]),
        "verb_rare": lambda i: q(limit=LIMIT, verb=gen.VERB + ("voided", "commented")[i % 2]),
        "activity": lambda i: q(limit=LIMIT, activity=unit(i)),
        "activity_related": lambda i: q(limit=LIMIT, activity=course(i), related_activities=True),
        "registration": lambda i: q(limit=LIMIT, registration=registration(i)),
        "agent_verb": lambda i: q(limit=LIMIT, agent=agent(i), verb=gen.VERB + "passed"),
        "activity_verb": lambda i: q(limit=LIMIT, activity=unit(i), verb=gen.VERB + "passed"),
        "since": lambda i: q(limit=LIMIT, since=when(gen._unit(i))),
        "since_until": lambda i: q(limit=LIMIT, since=when(gen._unit(i) * 0.9),
                                   until=when(gen._unit(i) * 0.9 + 0.05)),
        "verb_since_until": lambda i: q(limit=LIMIT, verb=gen.VERB + "passed", since=when(gen._unit(i) * 0.9),
                                        until=when(gen._unit(i) * 0.9 + 0.05)),
        "agent_since": lambda i: q(limit=LIMIT, agent=agent(i), since=when(gen._unit(i) * 0.5)),
        "activity_related_until_ascending": lambda i: q(limit=LIMIT, activity=course(i), related_activities=True,
                                                       until=when(0.5 + gen._unit(i) * 0.5), ascending=True),
        "paged_verb": lambda i: q(limit=LIMIT, verb=gen.VERB + verbs[i % len(verbs)]),
        "paged_activity_related": lambda i: q(limit=LIMIT, activity=course(i), related_activities=True),
        "paged_none_ascending": lambda i: q(limit=LIMIT, ascending=True),
    }


# as the service's process keeps it (lrs.http.keys.PAIR_KEYS)
PAIR_KEYS = PairKeysEverywhere()
# --mine: the statements/read/mine scope's authority (an IFI key), else None
MINE: list[str | None] = [None]


async def _cursor(pool: Any, query: StatementQuery, page: int) -> int | None:
    """The ``more`` position that leads to page ``page`` (1: none)."""
    after = None
    for _ in range(page - 1):
        _, after, more = await query_statements(pool, gen.TENANT, query, after_position=after, limit=LIMIT,
                                                pair_keys=PAIR_KEYS, authority=MINE[0])
        if not more:
            break
    return after


def _percentiles(samples: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in samples)
    return {"p50_ms": round(statistics.median(ms), 2), "p99_ms": round(ms[min(len(ms) - 1, int(len(ms) * 0.99))], 2),
            "max_ms": round(ms[-1], 2)}


async def time_filter(pool: Any, make: Callable[[int], StatementQuery], paged: bool, args: argparse.Namespace,
                      clients: int) -> dict[str, Any]:
    work = [(make(i), await _cursor(pool, make(i), args.page) if paged else None) for i in range(args.queries)]
    rows: list[int] = []
    samples: list[float] = []

    cpu: dict[str, float] = {}

    async def client(k: int) -> None:
        async with pool.acquire() as conn:
            backend = psutil.Process(await conn.fetchval("SELECT pg_backend_pid()")) if clients == 1 else None
            own0, server0 = time.process_time(), sum(backend.cpu_times()[:2]) if backend else 0.0
            for query, after in work[k::clients]:
                t0 = time.perf_counter()
                bodies, _, _ = await query_statements(conn, gen.TENANT, query, after_position=after, limit=LIMIT,
                                                      pair_keys=PAIR_KEYS, authority=MINE[0])
                samples.append(time.perf_counter() - t0)
                rows.append(len(bodies))
            if backend:  # CPU per page, which the machine's load does not inflate as it does wall time
                cpu["client_cpu_ms"] = round((time.process_time() - own0) * 1000 / len(samples), 2)
                cpu["postgres_cpu_ms"] = round((sum(backend.cpu_times()[:2]) - server0) * 1000 / len(samples), 2)

    await asyncio.gather(*(client(k) for k in range(clients)))
    return {**_percentiles(samples), "mean_rows": round(statistics.mean(rows), 1), **cpu}


async def explain(pool: Any, name: str, make: Callable[[int], StatementQuery], paged: bool, page: int,
                  sample: int = 7) -> None:
    query = make(sample)
    after = await _cursor(pool, query, page) if paged else None
    sql, params = build_page_query(gen.TENANT, query, after, LIMIT, pair_keys_everywhere=await low_water(pool) == 0)
    async with pool.acquire() as conn:
        for mode in ("force_generic_plan", "force_custom_plan"):
            await conn.execute(f"SET plan_cache_mode = {mode}")
            plan = await conn.fetch("EXPLAIN (ANALYZE, BUFFERS) " + sql, *params)
            print(f"--- {name} ({mode})")
            print("\n".join(r[0] for r in plan))
        await conn.execute("RESET plan_cache_mode")


def _plan_buffers(plan: dict) -> int:
    """Shared buffers a plan touched (hit or read), its own and its subplans'
    (the top node's counts include its children's)."""
    return int(plan.get("Shared Hit Blocks", 0)) + int(plan.get("Shared Read Blocks", 0))


async def buffers(pool: Any, make: Callable[[int], StatementQuery], paged: bool, args: argparse.Namespace) -> dict:
    """Pages of shared buffers each query touches, as the service plans it
    (generic plans): a cost that does not move with the machine's load."""
    touched: list[int] = []
    async with pool.acquire() as conn:
        await conn.execute("SET plan_cache_mode = force_generic_plan")
        try:
            for i in range(args.queries):
                query = make(i)
                after = await _cursor(conn, query, args.page) if paged else None
                sql, params = build_page_query(gen.TENANT, query, after, LIMIT,
                                               pair_keys_everywhere=await low_water(conn) == 0)
                plan = json.loads(await conn.fetchval("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sql, *params))
                touched.append(_plan_buffers(plan[0]["Plan"]))
        finally:
            await conn.execute("RESET plan_cache_mode")
    ordered = sorted(touched)
    worst = max(range(len(touched)), key=touched.__getitem__)
    return {"buffers_p50": ordered[len(ordered) // 2], "buffers_p99": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
            "buffers_mean": round(statistics.mean(touched), 1), "worst_sample": worst}


async def run(url: str, args: argparse.Namespace) -> dict[str, Any]:
    # the service's own pool for pages (generic plans, not reset after each use)
    if args.plan_cache_mode:
        pool = await create_statement_pool(url, application_name="bench-queries", max_size=args.clients,
                                           settings={"plan_cache_mode": args.plan_cache_mode})
    else:
        pool = await create_read_pool(url, max_size=args.clients)
    try:
        total = int(await pool.fetchval("SELECT position FROM log_head"))
        first = await pool.fetchval("SELECT stored FROM statements WHERE tenant = $1 ORDER BY position LIMIT 1", gen.TENANT)
        last = await pool.fetchval("SELECT stored FROM statements WHERE tenant = $1 ORDER BY position DESC LIMIT 1",
                                   gen.TENANT)
        sizes = {r["name"]: r["bytes"] for r in await pool.fetch(
            "SELECT c.relname AS name, pg_relation_size(c.oid) AS bytes FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relname IN ('events', 'statements', 'statement_keys') "
            "OR c.oid IN (SELECT indexrelid FROM pg_index WHERE indrelid IN "
            "('statements'::regclass, 'events'::regclass, 'statement_keys'::regclass))")}
        read_model = sum(v for k, v in sizes.items() if k.startswith("statement"))
        column_bytes = dict(await pool.fetchrow(
            "SELECT avg(pg_column_size(s.*))::int AS row FROM statements s TABLESAMPLE SYSTEM (1)"))
        analyzed = dict(await pool.fetchrow(
            "SELECT last_analyze::text, last_autoanalyze::text, n_mod_since_analyze FROM pg_stat_user_tables "
            "WHERE relname = 'statements'"))
        chosen = {k: v for k, v in filters(total, (first, last)).items() if not args.only or k in args.only}
        print(json.dumps({"read_model_bytes_per_statement": round(read_model / max(total, 1), 1),
                          "bytes_per_statement": {k: round(v / max(total, 1), 1) for k, v in sizes.items()},
                          "average_column_bytes": column_bytes}), file=sys.stderr)
        if args.explain:
            for name, make in chosen.items():
                await explain(pool, name, make, name.startswith("paged"), args.page, args.sample)
            return {}
        results: dict[str, Any] = {}
        if args.buffers:
            for name, make in chosen.items():
                results[name] = await buffers(pool, make, name.startswith("paged"), args)
                print(f"{name:34s} {results[name]}", file=sys.stderr, flush=True)
            return {"statements": total, "buffers": results}
        for name, make in chosen.items():
            paged = name.startswith("paged")
            sequential = await time_filter(pool, make, paged, args, 1)
            concurrent = await time_filter(pool, make, paged, args, args.clients)
            results[name] = {"sequential": sequential, f"clients_{args.clients}": concurrent}
            print(f"{name:34s} seq p50 {sequential['p50_ms']:7.2f} p99 {sequential['p99_ms']:7.2f} "
                  f"cpu {sequential['client_cpu_ms'] + sequential['postgres_cpu_ms']:5.2f}   "
                  f"{args.clients} clients p50 {concurrent['p50_ms']:7.2f} p99 {concurrent['p99_ms']:7.2f}   "
                  f"rows {sequential['mean_rows']}", file=sys.stderr, flush=True)
        return {"statements": total, "relation_bytes": sizes,
                "bytes_per_statement": {k: round(v / max(total, 1), 1) for k, v in sizes.items()},
                "read_model_bytes_per_statement": round(read_model / max(total, 1), 1),
                "average_column_bytes": column_bytes, "statistics": analyzed, "filters": results}
    finally:
        await pool.close()


# A store as a bulk load leaves it before anything analysed it: no column
# statistics for the read model and its indexes, autovacuum held off.
WITHOUT_STATISTICS = """
ALTER TABLE statements SET (autovacuum_enabled = false);
ALTER TABLE statement_keys SET (autovacuum_enabled = false);
DELETE FROM pg_statistic WHERE starelid IN (
    SELECT oid FROM pg_class WHERE relname IN ('statements', 'statement_keys')
    UNION SELECT indexrelid FROM pg_index WHERE indrelid IN ('statements'::regclass, 'statement_keys'::regclass));
"""
RESTORE_STATISTICS = """
ALTER TABLE statements RESET (autovacuum_enabled);
ALTER TABLE statement_keys RESET (autovacuum_enabled);
ANALYZE statements;
ANALYZE statement_keys;
"""


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    if args.url:
        return await run(args.url, args)
    async with gen.store_database(args.data) as url:
        if args.analyze:
            conn_pool = await create_pool(url, min_size=1, max_size=1)
            await conn_pool.execute("ANALYZE statements")
            await conn_pool.execute("ANALYZE statement_keys")
            await conn_pool.close()
        if not args.without_statistics:
            return await run(url, args)
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(WITHOUT_STATISTICS)
            return await run(url, args)
        finally:
            await conn.execute(RESTORE_STATISTICS)
            await conn.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--data", type=Path, help="a store made by bench/bulk_store.py")
    where.add_argument("--url", help="a migrated database holding bench/bulk_store.py's statements")
    parser.add_argument("--queries", type=int, default=300, help="pages per filter and mode (default: 300)")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients (default: 16)")
    parser.add_argument("--page", type=int, default=5, help="the page the paged filters read (default: 5)")
    parser.add_argument("--only", action="append", help="only this filter (repeatable)")
    parser.add_argument("--analyze", action="store_true", help="ANALYZE statements first")
    parser.add_argument("--explain", action="store_true", help="print the plans instead of timing")
    parser.add_argument("--sample", type=int, default=7, help="the sample --explain shows (default: 7)")
    parser.add_argument("--buffers", action="store_true",
                        help="count the shared buffers each page touches instead of timing (load-independent)")
    parser.add_argument("--without-statistics", action="store_true",
                        help="time the store as a bulk load leaves it before any ANALYZE (its column"
                             " statistics deleted, autovacuum off for the run); ANALYZE after")
    parser.add_argument("--plan-cache-mode", choices=("auto", "force_generic_plan", "force_custom_plan"),
                        help="time with this plan_cache_mode instead of the service's (lrs.store.reader.READ_SETTINGS)")
    parser.add_argument("--mine", action="store_true",
                        help="read as the statements/read/mine scope of the generator's authority (every Statement's)")
    parser.add_argument("--label", default="", help="a word for the result file name (before, after...)")
    parser.add_argument("--no-write", action="store_true", help="print only; do not write bench/results/")
    args = parser.parse_args(argv)
    if args.mine:
        MINE[0] = ifi_key(gen.AUTHORITY)
    load_before = [round(x, 2) for x in os.getloadavg()]
    result = asyncio.run(main_async(args))
    if args.explain:
        return 0
    result = {
        "benchmark": "statement queries", "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": "python bench/queries.py " + " ".join(sys.argv[1:]), "limit": LIMIT, **result,
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "loadavg_before": load_before, "loadavg_after": [round(x, 2) for x in os.getloadavg()],
                    "note": "a shared machine (2 cores, other engineers' tests and benchmarks beside it)",
                    "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                             cwd=ROOT, check=False).stdout.strip()},
    }
    print(json.dumps(result, indent=1))
    if not args.no_write:
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        label = f"-{args.label}" if args.label else ""
        path = RESULTS_DIR / f"queries-{result['statements'] // 1000}k{label}-{stamp}.json"
        path.write_text(json.dumps(result, indent=1) + "\n")
        print(path, file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
