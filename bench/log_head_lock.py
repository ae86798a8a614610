"""How long the single log head lock is held per statement (docs/scaling.md).

Every append transaction takes the ``log_head`` row FOR UPDATE and holds it
until its COMMIT returns (fsync included); that section is serial across every
process and replica appending to one log, so ``statements / time held`` is the
most one log can take at that group size, however many replicas ingest.

The writer times the section itself (``StatementWriter.head_lock_holds``; the
``lrs_log_head_lock_seconds`` histogram in production).  This drives the
group-commit writer directly (no HTTP) with --concurrency callers appending
batches of each --batch size, on a scratch database (a private PostgreSQL with
fsync on unless --url), and records per batch size: transactions, statements
per transaction, hold per transaction (p50, p99), hold per statement, the
share of the wall time the lock was held, and the ceiling it implies.

    python bench/log_head_lock.py                      # private PostgreSQL in /tmp
    python bench/log_head_lock.py --url postgresql://user@host/postgres --batch 1 --batch 100

Results go to bench/results/log-head-lock-<UTC time>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import asyncpg

from lrs.ingest.prepare import prepare_statements
from lrs.runtime.postgres import EmbeddedPostgres
from lrs.store import StatementWriter, create_pool
from lrs.service import migrate

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_record import add_result_options, load_average, machine, write_result  # noqa: E402
from store_writer import AUTHORITY, sample_statement, with_database  # noqa: E402


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


async def measure(url: str, batch: int, statements: int, concurrency: int, wait_ms: float, offset: int) -> dict:
    batches = [
        prepare_statements([sample_statement(offset + b * batch + i) for i in range(batch)],
                           version="1.0.3", authority=AUTHORITY, new_id=uuid.uuid4)
        for b in range(statements // batch)
    ]
    pool = await create_pool(url, min_size=2, max_size=4)
    writer = StatementWriter(pool, wait_ms=wait_ms)
    writer.keep_head_lock_holds = True
    await writer.start()
    queue = list(reversed(batches))

    async def caller() -> None:
        while queue:
            await writer.append("default", queue.pop())

    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    wall = time.perf_counter() - started
    await writer.close()
    await pool.close()
    holds = writer.head_lock_holds
    written = writer.statements_committed
    per_statement = writer.head_lock_seconds / written
    return {
        "batch": batch,
        "concurrency": concurrency,
        "statements": written,
        "transactions": writer.groups_committed,
        "statements_per_transaction": round(written / writer.groups_committed, 1),
        "wall_s": round(wall, 3),
        "statements_per_s": round(written / wall, 1),
        "lock_held_s": round(writer.head_lock_seconds, 3),
        "lock_held_share_of_wall": round(writer.head_lock_seconds / wall, 3),
        "hold_per_transaction_ms": {
            "p50": round(statistics.median(holds) * 1000, 3),
            "p99": round(percentile(holds, 0.99) * 1000, 3),
            "mean": round(statistics.fmean(holds) * 1000, 3),
        },
        "hold_per_statement_us": round(per_statement * 1e6, 2),
        "ceiling_statements_per_s": round(1 / per_statement),
    }


async def run(args: argparse.Namespace) -> dict:
    load_before = load_average()
    scratch = pg = None
    server = args.url
    if server is None:
        scratch = Path(tempfile.mkdtemp(prefix="lrs-bench-lock-", dir="/tmp"))
        pg = EmbeddedPostgres(scratch / "pg")  # fsync on, as in production
        server = await pg.start()
    name = f"lrs_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(server)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        url = with_database(server, name)
        await migrate(url)
        runs = []
        offset = 0
        for batch in args.batch or [1, 10, 100]:
            for _ in range(args.repeat):
                result = await measure(url, batch, args.statements, args.concurrency, args.wait_ms, offset)
                offset += args.statements
                runs.append(result)
                print(
                    f"batch={batch:>4}  {result['statements_per_transaction']:>7} statements/tx  "
                    f"hold/tx p50 {result['hold_per_transaction_ms']['p50']:.2f} ms  "
                    f"hold/statement {result['hold_per_statement_us']:.1f} µs  "
                    f"held {result['lock_held_share_of_wall']:.0%} of {result['wall_s']:.1f}s  "
                    f"ceiling {result['ceiling_statements_per_s']:,}/s  (ran {result['statements_per_s']:,.0f}/s)"
                )
        return {
            "benchmark": "log-head-lock",
            "recorded_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "target": "StatementWriter against " + ("a private PostgreSQL 16 (fsync on)" if pg else "--url"),
            "command": "python " + " ".join(sys.argv),
            "machine": machine(load_before=load_before),
            "note": args.note,
            "runs": runs,
        }
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
        if pg is not None:
            await pg.stop()
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="PostgreSQL server URL (a scratch database is created); default: a private server")
    parser.add_argument("--batch", type=int, action="append", help="statements per append (repeatable; default 1, 10, 100)")
    parser.add_argument("--statements", type=int, default=20_000, help="statements per run")
    parser.add_argument("--concurrency", type=int, default=16, help="callers appending at once")
    parser.add_argument("--wait-ms", type=float, default=2.0, help="the writer's group-commit wait")
    parser.add_argument("--repeat", type=int, default=1, help="runs per batch size")
    add_result_options(parser)
    args = parser.parse_args()
    record = asyncio.run(run(args))
    if not args.no_write:
        write_result(record, "log-head-lock", args.label)


if __name__ == "__main__":
    main()
