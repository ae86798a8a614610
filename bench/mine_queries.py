"""Latency of statements/read/mine pages (a credential that reads only the
Statements it sent), limit 100, for an authority that sent few Statements and
one that sent most of them, with and without other filters.

Runs on a store built by ``bench/bulk_store.py`` (every Statement of it has
the authority ``bulk``); the first run adds 50 Statements of another
authority (``rare``) at the end of the log.  ``--reader`` takes the reader
modules (lrs/store/reader.py, and page_query.py and statement_walks.py where
the checkout has them) of another checkout, so that a branch and main
are timed on one store in one session; ``--without-index`` drops the index on
(authority_key, position) first (main's schema before migration 0094), and a
run without it builds it again (the time is recorded).  Sequential pages,
each filter ``--queries`` times, p50 and p99.

    .venv/bin/python bench/mine_queries.py --data /work/benchdata/store --reader /work/main --without-index --label before
    .venv/bin/python bench/mine_queries.py --data /work/benchdata/store --label after
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import statistics
import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import bulk_store as gen  # noqa: E402
from run_record import add_result_options, load_average, write_result  # noqa: E402
from lrs.ingest.prepare import prepare_statements  # noqa: E402
from lrs.ingest.query import StatementQuery  # noqa: E402
from lrs.store import StatementWriter, create_pool  # noqa: E402
from lrs.xapi.identity import authority_key, ifi_key  # noqa: E402

RARE = {"objectType": "Agent", "name": "rare", "account": {"homePage": "https://lrs.example.gov", "name": "rare"}}
RARE_STATEMENTS = 50
LIMIT = 100
INDEX = "CREATE INDEX IF NOT EXISTS statements_authority_key_position ON statements (authority_key, position)"


def _load(name: str, path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def load_reader(checkout: Path) -> Any:
    """The checkout's reader, built on the checkout's own page SQL: the
    modules split out of reader.py are the checkout's while it is loaded
    (a checkout from before the split has them in reader.py itself)."""
    store = checkout / "lrs" / "store"
    split = [f"lrs.store.{name}" for name in ("statement_walks", "page_query") if (store / f"{name}.py").exists()]
    own = {name: importlib.import_module(name) for name in split}  # this tree's, given back after
    try:
        for name in split:  # in this order: page_query imports statement_walks
            sys.modules[name] = _load(name, store / f"{name.rsplit('.', 1)[1]}.py")
        return _load("bench_reader", store / "reader.py")
    finally:
        sys.modules.update(own)


async def plant_rare(pool: Any) -> None:
    """50 Statements of the rare authority, once (ids of their own)."""
    rare = "U:" + authority_key(RARE)  # type: ignore[operator]
    if await pool.fetchval("SELECT count(*) FROM statements WHERE authority_key = statement_key($1, $2)",
                           gen.TENANT, rare):
        return
    bodies = []
    for n in range(RARE_STATEMENTS):
        body = dict(gen.statement(1000 + n))
        body["id"] = str(uuid.uuid5(gen.NAMESPACE, f"rare-{n}"))
        bodies.append(body)
    writer = StatementWriter(pool, wait_ms=0.0)
    await writer.start()
    try:
        await writer.append(gen.TENANT, prepare_statements(bodies, version="1.0.3", authority=RARE,
                                                           new_id=uuid.uuid4))
    finally:
        await writer.close()


def queries() -> dict[str, StatementQuery]:
    sample = gen.statement(1000)
    learner = ifi_key(sample["actor"])
    course = sample["context"]["contextActivities"]["parent"][0]["id"]
    return {
        "none": StatementQuery(limit=LIMIT),
        "verb_common": StatementQuery(limit=LIMIT, verb=gen.VERB + "answered"),
        "agent": StatementQuery(limit=LIMIT, agent=learner),
        "activity_related": StatementQuery(limit=LIMIT, activity=course, related_activities=True),
    }


async def run(url: str, args: argparse.Namespace) -> dict[str, Any]:
    reader = load_reader(args.reader)
    pool = await create_pool(url, min_size=1, max_size=1)
    try:
        await plant_rare(pool)
        index_s = None
        if args.without_index:
            await pool.execute("DROP INDEX IF EXISTS statements_authority_key_position")
        elif not await pool.fetchval("SELECT to_regclass('statements_authority_key_position') IS NOT NULL"):
            t0 = time.perf_counter()
            await pool.execute(INDEX)
            index_s = round(time.perf_counter() - t0, 2)
            await pool.execute("ANALYZE statements")
        total = int(await pool.fetchval("SELECT position FROM log_head"))
        results: dict[str, Any] = {}
        for who, authority in (("rare", authority_key(RARE)), ("common", authority_key(gen.AUTHORITY))):
            for name, query in queries().items():
                samples, rows = [], 0
                async with pool.acquire() as conn:
                    for _ in range(args.queries):
                        t0 = time.perf_counter()
                        bodies, _, _ = await reader.query_statements(conn, gen.TENANT, query, limit=LIMIT,
                                                                     authority=authority)
                        samples.append(time.perf_counter() - t0)
                        rows = len(bodies)
                ms = sorted(s * 1000 for s in samples)
                figures = {"p50_ms": round(statistics.median(ms), 2),
                           "p99_ms": round(ms[min(len(ms) - 1, int(len(ms) * 0.99))], 2), "rows": rows}
                results[f"{who}_{name}"] = figures
                print(f"{who:6s} {name:18s} p50 {figures['p50_ms']:8.2f} p99 {figures['p99_ms']:8.2f} rows {rows}",
                      file=sys.stderr, flush=True)
        return {"statements": total, "index_build_s": index_s, "filters": results}
    finally:
        await pool.close()


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    async with gen.store_database(args.data) as url:
        return await run(url, args)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="a store made by bench/bulk_store.py")
    parser.add_argument("--reader", type=Path, default=ROOT, help="the checkout whose reader is timed")
    parser.add_argument("--without-index", action="store_true", help="drop the (authority_key, position) index")
    parser.add_argument("--queries", type=int, default=50, help="pages per filter and authority (default: 50)")
    add_result_options(parser, note=False)
    args = parser.parse_args(argv)
    started = time.time()
    result = asyncio.run(main_async(args))
    result.update({"benchmark": "mine queries", "reader": str(args.reader), "index": not args.without_index,
                   "sealing": "off (bulk_store writes unsealed statements)", "limit": LIMIT,
                   "queries": args.queries, "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                   "seconds": round(time.time() - started, 1), "loadavg": load_average()})
    print(json.dumps(result))
    if not args.no_write:
        write_result(result, f"mine-queries-authority-index-{result['statements'] // 1000}k", args.label, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
