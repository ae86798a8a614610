"""What the forwarder's checkpoint costs per batch (connectors/forward/checkpoint.py).

``lrs forward`` writes its checkpoint once per fetched batch.  Before, that
was one upsert of the highest position dealt with; now it is the low-water
mark and its runs (one upsert), plus, when the mark has holes, one query of
the log for the events other than statements in them.  This drives the
checkpoint as the forwarder does (record each statement's position, save
after each batch) over a log written on a private PostgreSQL, without NATS
or a target, so only the checkpoint is measured, and records per scenario
the CPU time (this process and every PostgreSQL process) and the wall time
per batch and per statement, the runs kept and the size of the row:

* ``statements``: a log of statements only, delivered in order;
* ``mixed``: one roster event every ten events (positions the consumer never
  delivers, so each batch leaves holes the log fills in);
* ``held``: mixed, and one statement in 500 held back for 2,000 positions
  (awaiting its retry) while the ones after it are dealt with.

``old`` is the checkpoint before the low-water mark (its upsert of the
highest position), run on the same logs.  Runs alternate old and new.

    python bench/forward_checkpoint.py [--events 20000] [--batch 100] [--rounds 2] [--name forward-lwm]

Results go to bench/results/forward-checkpoint-<name>-<UTC time>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import asyncpg

from connectors.forward.checkpoint import ForwardCheckpoint
from lrs.runtime.postgres import EmbeddedPostgres
from lrs.service import migrate
from lrs.store.event_append import append_events
from process_cpu import tree_cpu_s
from run_record import add_result_options, load_average, write_result

OLD_ADVANCE = """
INSERT INTO forward_checkpoints (name, position) VALUES ($1, $2)
ON CONFLICT (name) DO UPDATE SET position = GREATEST(forward_checkpoints.position, EXCLUDED.position),
                                 updated_at = now()
"""


async def write_log(pool: asyncpg.Pool, events: int, roster_every: int) -> list[int]:
    """The log's statement positions; a roster event every ``roster_every`` (0: none)."""
    statements = []
    position = 0
    async with pool.acquire() as conn:
        while position < events:
            kinds = []
            for _ in range(min(500, events - position)):
                position += 1
                kinds.append("roster" if roster_every and position % roster_every == 0 else "statement")
            async with conn.transaction():
                for kind in kinds:  # one append per event keeps the types in place
                    await append_events(conn, "default", kind, [b'{"id":"x"}'])
            statements += [p for p, kind in zip(range(position - len(kinds) + 1, position + 1), kinds)
                           if kind == "statement"]
    return statements


def delivery_order(statements: list[int], hold_every: int, hold_for: int) -> list[int]:
    """Statements in stream order, one in ``hold_every`` dealt with ``hold_for`` positions late."""
    if not hold_every:
        return list(statements)
    order: list[int] = []
    held: list[tuple[int, int]] = []  # (due, position)
    for index, position in enumerate(statements):
        while held and held[0][0] <= position:
            order.append(held.pop(0)[1])
        if index % hold_every == hold_every // 2:
            held.append((position + hold_for, position))
        else:
            order.append(position)
    order += [position for _, position in held]
    return order


def cpu_seconds(server_pid: int) -> float:
    """CPU seconds of this process and of the PostgreSQL server (every process below ``server_pid``)."""
    return time.process_time() + tree_cpu_s(server_pid)


async def run_once(url: str, server_pid: int, order: list[int], batch: int, kind: str, name: str) -> dict:
    pool = await asyncpg.create_pool(url, min_size=1, max_size=1)
    checkpoint = ForwardCheckpoint(pool, name)
    await checkpoint.load()
    saves: list[float] = []
    runs_max = 0
    cpu0, wall0 = cpu_seconds(server_pid), time.perf_counter()
    for start in range(0, len(order), batch):
        chunk = order[start:start + batch]
        began = time.perf_counter()
        if kind == "old":
            await pool.execute(OLD_ADVANCE, name, max(chunk))
        else:
            checkpoint.start_at(min(chunk))
            for position in chunk:
                checkpoint.mark.record(position)
            await checkpoint.save()
            runs_max = max(runs_max, len(checkpoint.mark.done_above))
        saves.append(time.perf_counter() - began)
    wall = time.perf_counter() - wall0
    cpu = cpu_seconds(server_pid) - cpu0
    row = await pool.fetchrow("SELECT position, done_above FROM forward_checkpoints WHERE name = $1", name)
    await pool.close()
    saves.sort()
    return {
        "checkpoint": kind, "batches": len(saves), "statements": len(order),
        "cpu_ms_per_batch": round(cpu / len(saves) * 1000, 3),
        "cpu_us_per_statement": round(cpu / len(order) * 1e6, 2),
        "wall_ms_per_batch_p50": round(saves[len(saves) // 2] * 1000, 3),
        "wall_ms_per_batch_p99": round(saves[min(len(saves) - 1, int(len(saves) * 0.99))] * 1000, 3),
        "wall_s": round(wall, 3),
        "runs_max": runs_max, "final_position": row["position"], "final_runs": len(row["done_above"]) // 2,
    }


async def run(args: argparse.Namespace) -> dict:
    scratch = Path(tempfile.mkdtemp(prefix="lrs-bench-fwdcp-", dir="/tmp"))
    pg = EmbeddedPostgres(scratch / "pg")
    results: dict[str, list[dict]] = {}
    try:
        server = await pg.start()
        assert pg.pid is not None
        scenarios = {"statements": (0, 0), "mixed": (10, 0), "held": (10, 500)}
        for scenario, (roster_every, hold_every) in scenarios.items():
            admin = await asyncpg.connect(server)
            database = f"fwdcp_{scenario}"
            await admin.execute(f'CREATE DATABASE "{database}"')
            await admin.close()
            url = pg.url_for(database)
            await migrate(url)
            pool = await asyncpg.create_pool(url, min_size=1, max_size=1)
            statements = await write_log(pool, args.events, roster_every)
            await pool.close()
            order = delivery_order(statements, hold_every, 2000)
            kinds = ["new"] if hold_every else ["old", "new"]  # the old one cannot tell a held statement apart
            for round_ in range(args.rounds):
                for kind in kinds:
                    result = await run_once(url, pg.pid, order, args.batch, kind, f"{kind}-{round_}")
                    results.setdefault(scenario, []).append(result)
                    print(scenario, json.dumps(result), flush=True)
    finally:
        await pg.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    return {
        "bench": "forward_checkpoint", "branch": args.name,
        "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "events": args.events, "batch": args.batch, "rounds": args.rounds,
        "load_average": load_average(), "cpus": os.cpu_count(), "python": platform.python_version(),
        "note": "a busy shared machine (2 cores, several benchmarks at once): compare rows of one run only",
        "results": results,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20000, help="events in each scenario's log (default: 20000)")
    parser.add_argument("--batch", type=int, default=100, help="statements per batch, as --batch-size (default: 100)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating old/new rounds (default: 2)")
    parser.add_argument("--name", default="forward-lwm", help="the branch or label in the result file's name")
    add_result_options(parser, label=False, note=False)
    args = parser.parse_args()
    report = asyncio.run(run(args))
    if not args.no_write:
        write_result(report, "forward-checkpoint", args.name)


if __name__ == "__main__":
    main()
