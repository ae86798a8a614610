"""Raw throughput of the group-commit writer (no HTTP), for sizing.

Creates a fresh database on the server at --url, migrates it, then has
--concurrency callers append prepared batches of --batch statements until
--statements have been written.  Prints statements/s and per-append latency.

    python bench/store_writer.py --url postgresql://user@127.0.0.1/postgres
    python bench/store_writer.py --url ... --drop-index statements_actor_keys

``--drop-index`` (repeatable) measures the write cost of a read-model index;
``--defines`` appends as a sender with the ``define`` scope, so the writer also
merges each group's Activity Definitions into the canonical ones.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import time
import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from lrs.ingest.prepare import prepare_statements
from lrs.store import StatementWriter, create_pool
from lrs.service import migrate

AUTHORITY = {"objectType": "Agent", "name": "bench", "mbox": "mailto:bench@example.com"}


def sample_statement(n: int) -> dict:
    return {
        "actor": {"objectType": "Agent", "name": f"Learner {n % 5000}",
                  "account": {"homePage": "https://mooc.example.org", "name": f"user-{n % 5000}"}},
        "verb": {"id": "http://adlnet.gov/expapi/verbs/completed", "display": {"en-US": "completed"}},
        "object": {"objectType": "Activity", "id": f"https://mooc.example.org/course/{n % 50}/unit/{n % 400}",
                   "definition": {"name": {"en-US": f"Unit {n % 400}"},
                                  "type": "http://adlnet.gov/expapi/activities/lesson"}},
        "result": {"score": {"scaled": (n % 100) / 100}, "success": n % 3 != 0,
                   "completion": True, "duration": "PT4M12S"},
        "context": {"registration": str(uuid.UUID(int=n % 7000 + 1)), "platform": "bench",
                    "contextActivities": {"parent": [{"id": f"https://mooc.example.org/course/{n % 50}"}]}},
        "timestamp": "2024-05-01T12:00:00.000Z",
    }


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


@contextlib.asynccontextmanager
async def scratch_database(url: str, prefix: str) -> AsyncIterator[str]:
    """A new database named ``prefix``_<random> on ``url``'s server,
    migrated: its URL; dropped at the end (also when the migration fails)."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        scratch = with_database(url, name)
        await migrate(scratch)
        yield scratch
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def run(args: argparse.Namespace) -> None:
    async with scratch_database(args.url, "lrs_bench") as url:
        conn = await asyncpg.connect(url)
        for index in args.drop_index:
            await conn.execute(f'DROP INDEX "{index}"')
        await conn.close()
        batches_total = args.statements // args.batch
        batches = [
            prepare_statements([sample_statement(b * args.batch + i) for i in range(args.batch)],
                               version="1.0.3", authority=AUTHORITY, new_id=uuid.uuid4)
            for b in range(batches_total)
        ]
        pool = await create_pool(url, min_size=2, max_size=4)
        writer = StatementWriter(pool, wait_ms=args.wait_ms, max_statements=args.max_statements)
        await writer.start()
        latencies: list[float] = []
        queue = list(reversed(batches))

        async def caller() -> None:
            while queue:
                batch = queue.pop()
                t0 = time.perf_counter()
                await writer.append("default", batch, defines=args.defines)
                latencies.append(time.perf_counter() - t0)

        started = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(args.concurrency)))
        elapsed = time.perf_counter() - started
        await writer.close()
        await pool.close()
        latencies.sort()
        written = batches_total * args.batch
        print(
            f"{written} statements in {elapsed:.2f}s: {written / elapsed:,.0f} statements/s; "
            f"{writer.groups_committed} transactions ({written / max(writer.groups_committed, 1):.0f} per tx); "
            f"append p50 {statistics.median(latencies) * 1000:.1f} ms, "
            f"p99 {latencies[int(len(latencies) * 0.99) - 1] * 1000:.1f} ms; dropped {args.drop_index or 'none'}; "
            f"defines {args.defines}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True, help="PostgreSQL server URL (a scratch database is created)")
    parser.add_argument("--statements", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--wait-ms", type=float, default=2.0)
    parser.add_argument("--max-statements", type=int, default=5000)
    parser.add_argument("--drop-index", action="append", default=[])
    parser.add_argument("--defines", action="store_true", help="merge Activity Definitions at write time")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
