"""Which statement of a group's transaction a cached plan makes slow.

A connection's prepared statement gets a generic plan after five runs and
keeps it until a table it reads is analysed again (``statements`` and
``statement_keys`` are analysed after 10,000 changed rows, migration 0092).
A plan made while the store holds a few dozen statements can stay on after
the store has grown.  This bench makes that happen on purpose and times each
statement the writer sends, on three connections::

    python bench/writer_statement_plans.py --url postgresql://postgres@/postgres?host=/path/run

1. a fresh, migrated store; the writer's connection ("early") writes
   ``--early-groups`` single-statement groups (its plans are made now);
2. another connection fills the store with ``--fill`` statements (batches of 100;
   fewer than 10,000, so that autovacuum does not analyse statements meanwhile);
3. the early connection writes ``--groups`` single-statement groups, one
   after the other, each statement timed (client side: the round trip
   included, nothing else running on it);
4. a new connection ("late") does the same: its plans are made on the grown store.

``--begin`` replaces the BEGIN of a group's transaction (what
lrs.store.group_commit_sql.begin_group gives), e.g. ``--begin BEGIN`` for
PostgreSQL's own choice of plan (auto), or ``--begin "BEGIN; SET LOCAL
plan_cache_mode = force_custom_plan"`` for planning at every execution.
The result is the median time of each statement (by its first words), and
each connection's ``pg_prepared_statements`` counts of generic and custom plans.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
import uuid
from collections import defaultdict
from pathlib import Path

import asyncpg
import asyncpg.connection

sys.path.insert(0, str(Path(__file__).resolve().parent))
from process_cpu import load_average  # noqa: E402
from store_writer import AUTHORITY, sample_statement, scratch_database  # noqa: E402

from lrs.ingest.prepare import prepare_statements  # noqa: E402
from lrs.store import StatementWriter, create_pool  # noqa: E402
try:  # where a group's transaction looks begin_group up
    import lrs.store.group_write as group_write  # noqa: E402
except ImportError:  # a checkout from before the writer's split (lrs/store/writer.py held it)
    import lrs.store.writer as group_write  # noqa: E402

_timings: dict[str, list[float]] | None = None


def _name(query: str) -> str:
    words = " ".join(query.split())
    for known in ("log_head_locked_with_touched", "INSERT INTO activity_definitions", "activity_definitions d",
                  "activity_definitions a", "new_events AS", "UPDATE statements SET voided", "learner_keys", "WITH RECURSIVE back"):
        if known in words:
            return known
    return words[:60]


def _timed(method):  # type: ignore[no-untyped-def]
    async def wrapper(self, query, *args, **kwargs):  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        try:
            return await method(self, query, *args, **kwargs)
        finally:
            if _timings is not None:
                _timings[_name(query)].append(time.perf_counter() - started)
    return wrapper


for _method in ("fetch", "fetchrow", "fetchval", "execute"):
    setattr(asyncpg.connection.Connection, _method, _timed(getattr(asyncpg.connection.Connection, _method)))


def batch(start: int, size: int) -> list:
    return prepare_statements([sample_statement(start + i) for i in range(size)], version="1.0.3",
                              authority=AUTHORITY, new_id=uuid.uuid4)


async def single_groups(writer: StatementWriter, start: int, groups: int) -> None:
    for n in range(groups):
        await writer.append("default", batch(start + n, 1), defines=True)


async def plan_counts(pool: asyncpg.Pool) -> list[dict]:
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements WHERE statement NOT LIKE '%pg_prepared%'"
        )
    return sorted(({"statement": _name(r["statement"]), "generic_plans": r["generic_plans"],
                    "custom_plans": r["custom_plans"]} for r in rows), key=lambda r: r["statement"])


async def timed_groups(writer: StatementWriter, start: int, groups: int) -> dict[str, float]:
    global _timings
    _timings = defaultdict(list)
    try:
        await single_groups(writer, start, groups)
        return {name: round(statistics.median(t) * 1e6, 1) for name, t in sorted(_timings.items())}
    finally:
        _timings = None


async def run(args: argparse.Namespace) -> dict:
    if args.begin is not None:
        group_write.begin_group = lambda log_position: args.begin
    async with scratch_database(args.url, "lrs_statement_plans") as url:
        early = await create_pool(url, min_size=1, max_size=1)
        early_writer = StatementWriter(early, wait_ms=0, shared_log=True)
        await early_writer.start()
        await single_groups(early_writer, 0, args.early_groups)
        filler = await create_pool(url, min_size=1, max_size=1)
        fill_writer = StatementWriter(filler, wait_ms=0, shared_log=True)
        await fill_writer.start()
        for start in range(0, args.fill, 100):
            await fill_writer.append("default", batch(10_000_000 + start, 100), defines=True)
        await fill_writer.close()
        await filler.close()
        result: dict = {"begin": args.begin or "the writer's (begin_group)", "early_groups": args.early_groups, "fill": args.fill}
        result["early_connection_us"] = await timed_groups(early_writer, 20_000_000, args.groups)
        result["early_connection_plans"] = await plan_counts(early)
        await early_writer.close()
        await early.close()
        late = await create_pool(url, min_size=1, max_size=1)
        late_writer = StatementWriter(late, wait_ms=0, shared_log=True)
        await late_writer.start()
        await single_groups(late_writer, 30_000_000, 10)  # past the five custom plans
        result["late_connection_us"] = await timed_groups(late_writer, 40_000_000, args.groups)
        result["late_connection_plans"] = await plan_counts(late)
        await late_writer.close()
        await late.close()
        result["load_average_after"] = load_average()
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True, help="PostgreSQL server URL (a scratch database is created)")
    parser.add_argument("--early-groups", type=int, default=20, help="groups the early connection writes first")
    parser.add_argument("--fill", type=int, default=9_000,
                        help="statements written before the timed groups (fewer than the 10,000 changed rows after"
                             " which autovacuum analyses statements again, which would make new plans)")
    parser.add_argument("--groups", type=int, default=100, help="timed single-statement groups per connection")
    parser.add_argument("--begin", help="the BEGIN of a group's transaction (default: the writer's own)")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args)), indent=1))


if __name__ == "__main__":
    main()
