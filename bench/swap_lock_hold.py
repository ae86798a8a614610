"""How long a reader of a live table waits while ``lrs replay competency``
(or ``--compare``) runs: what an erasure, which reads ``identity_links``
holding the log head lock, would wait, and every Statement insert with it
(docs/privacy.md "Erasure and a replay").

A probe connection, in a process of its own, reads ``identity_links``
(``SELECT 1 ... LIMIT 1``, a prepared statement as the erasure's) every 10 ms
while a replay or a comparison runs; the longest read is the figure (with
when it started, from the replay's start), beside the replay's duration.
Each run is a process of its own running the code of ``--roots``' checkout
(its ``.venv``), in the order A B B A for each pair, on one log filled once:

    python bench/swap_lock_hold.py --data-dir D --fill --learners 20000 --statements 60000
    python bench/swap_lock_hold.py --data-dir D --roots /work/wt/base,. --kinds replay,compare --pairs 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DATABASE = "swap_lock_hold"
PROBE = "SELECT 1 FROM identity_links LIMIT 1"
PROBE_EVERY_S = 0.01


async def _with_server(data_dir: str, work: Any) -> Any:
    from lrs.runtime.postgres import EmbeddedPostgres

    pg = EmbeddedPostgres(Path(data_dir))
    await pg.start()
    try:
        return await work(pg)
    finally:
        await pg.stop()


async def fill(args: argparse.Namespace) -> None:
    import random
    import uuid
    from datetime import datetime, timezone

    import asyncpg

    from lrs.service import migrate
    from lrs.store import StatementWriter, create_pool
    from projections.competency.store import CompetencyProjection
    from projections.runner import ProjectionRunner
    from projections.units.roster import parse_json
    from projections.units.store import load_roster
    from lrs.ingest.prepare import prepare_statements
    from tests.integration.competency_statements import AUTHORITY, CATALOG, MODULES, course_statement, learner_key

    async def work(pg: Any) -> None:
        admin = await asyncpg.connect(pg.url)
        await admin.execute(f"DROP DATABASE IF EXISTS {DATABASE}")
        await admin.execute(f"CREATE DATABASE {DATABASE}")
        await admin.close()
        url = pg.url_for(DATABASE)
        await migrate(url)
        pool = await create_pool(url, min_size=1, max_size=4)
        writer = StatementWriter(pool, wait_ms=1.0)
        await writer.start()
        try:
            units = [{"id": "mic", "kind": "ministry", "name": "Ministry"}] + [
                {"id": f"mic-{u}", "parent": "mic", "kind": "agency", "name": f"Agency {u}"} for u in range(20)]
            memberships = [{"learner": learner_key(n), "unit": f"mic-{n % 20}", "valid_from": "2024-01-01T00:00:00Z"}
                           for n in range(args.learners)]
            await load_roster(pool, "default", parse_json({"units": units, "memberships": memberships}),
                              now=datetime(2025, 6, 1, tzinfo=timezone.utc))
            rng = random.Random(7)
            bodies = [course_statement(rng.randrange(args.learners), *rng.choice(MODULES), rng.randrange(5000))
                      for _ in range(args.statements)]
            for start in range(0, len(bodies), 100):
                prepared = prepare_statements(bodies[start:start + 100], version="1.0.3", authority=AUTHORITY,
                                              new_id=uuid.uuid4)
                await writer.append("default", prepared)
        finally:
            await writer.close()
        await ProjectionRunner(pool, CompetencyProjection(CATALOG)).catch_up(batch_size=5000)
        await pool.close()

    await _with_server(args.data_dir, work)


def _probe(url: str, pipe: Any) -> None:
    """In a process of its own (the replay's event loop would delay its reads
    too): read PROBE every PROBE_EVERY_S until told to stop, then send back
    (wall-clock start, seconds) of each read."""
    import asyncpg

    async def probing() -> list[tuple[float, float]]:
        conn = await asyncpg.connect(url)
        reads: list[tuple[float, float]] = []
        pipe.send("ready")
        while not pipe.poll():
            started, clock = time.time(), time.monotonic()
            await conn.fetchval(PROBE)
            reads.append((started, time.monotonic() - clock))
            await asyncio.sleep(PROBE_EVERY_S)
        await conn.close()
        return reads

    pipe.send(asyncio.run(probing()))


async def one_run(args: argparse.Namespace) -> dict[str, Any]:
    """One replay or comparison with the probe beside it (the code of the checkout first on sys.path)."""
    import multiprocessing

    from lrs.store import create_pool
    from lrs.store.pool import connect
    from projections.competency.catalog import load_catalog
    from projections.competency.store import CompetencyProjection
    from projections.replay import replay
    from projections.replay_compare import compare

    async def work(pg: Any) -> dict[str, Any]:
        url = pg.url_for(DATABASE)
        pool = await create_pool(url, min_size=1, max_size=4)
        ours, theirs = multiprocessing.Pipe()
        prober = multiprocessing.get_context("spawn").Process(target=_probe, args=(url, theirs))
        prober.start()
        assert await asyncio.to_thread(ours.recv) == "ready"
        try:
            projection = CompetencyProjection(load_catalog(), replay_processes=1)
            started, wall = time.monotonic(), time.time()
            if args.kind == "replay":
                await replay(pool, projection, connect=lambda: connect(url))
                equal = None
            else:
                equal = (await compare(pool, projection, connect=lambda: connect(url))).equal
            seconds = time.monotonic() - started
        finally:
            ours.send("stop")
            reads = await asyncio.to_thread(ours.recv)
            prober.join()
            await pool.close()
        at, longest = max(reads, key=lambda read: read[1])
        return {"kind": args.kind, "seconds": round(seconds, 3), "probe_max_s": round(longest, 4),
                "probe_max_at_s": round(at - wall, 3), "probe_reads": len(reads), "equal": equal,
                "loadavg": [round(x, 2) for x in os.getloadavg()]}

    return await _with_server(args.data_dir, work)


def _median_interval(values: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 4), "min": round(min(values), 4), "max": round(max(values), 4)}


def _commit(root: str) -> str:
    return subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()


def alternate(args: argparse.Namespace) -> int:
    from run_record import load_average, machine, write_result

    load_before = load_average()
    roots = [str(Path(r).resolve()) for r in args.roots.split(",")]
    runs: list[dict[str, Any]] = []
    for kind in args.kinds.split(","):
        for pair in range(args.pairs):
            for root in (roots if pair % 2 == 0 else roots[::-1]):
                python = str(Path(root) / ".venv" / "bin" / "python")
                out = subprocess.run(
                    [python, __file__, "--one", "--root", root, "--kind", kind, "--data-dir", args.data_dir],
                    capture_output=True, text=True, check=True).stdout
                run = json.loads(out.strip().splitlines()[-1])
                run["root"] = root
                runs.append(run)
                print(json.dumps(run), flush=True)
    summary = {
        f"{kind} {root}": {
            "probe_max_s": _median_interval([r["probe_max_s"] for r in runs if r["kind"] == kind and r["root"] == root]),
            "seconds": _median_interval([r["seconds"] for r in runs if r["kind"] == kind and r["root"] == root]),
        }
        for kind in args.kinds.split(",") for root in roots
    }
    print(json.dumps(summary, indent=2))
    if not args.no_write:
        record = {"command": " ".join(sys.argv), "note": args.note, "machine": machine(load_before=load_before),
                  "roots": {root: _commit(root) for root in roots}, "runs": runs, "summary": summary}
        write_result(record, "swap-lock-hold", args.label)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--fill", action="store_true", help="make the log (once)")
    parser.add_argument("--learners", type=int, default=20_000)
    parser.add_argument("--statements", type=int, default=60_000)
    parser.add_argument("--roots", default=str(HERE.parent), help="checkouts to alternate, comma-separated")
    parser.add_argument("--kinds", default="replay,compare")
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    parser.add_argument("--kind", help=argparse.SUPPRESS)
    sys.path.insert(0, str(HERE))
    from run_record import add_result_options

    add_result_options(parser)
    args = parser.parse_args()
    if args.one:
        sys.path.insert(0, args.root)
        print(json.dumps(asyncio.run(one_run(args))))
        return 0
    if args.fill:
        sys.path.insert(0, str(HERE.parent))
        asyncio.run(fill(args))
        return 0
    return alternate(args)


if __name__ == "__main__":
    sys.exit(main())
