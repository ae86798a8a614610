"""One replay of a filled log, measured as ``lrs replay competency`` runs it.

The replay runs on uvloop (``lrs.commands.common.run_async``'s loop), in the
interpreter that runs this file, with the code of ``--tree`` (a checkout; by
default this one) first on ``sys.path``: this module imports nothing of the
project at its top, so a checkout given here is the one measured, whoever
imports it first.  Prints one JSON object: events/s, the CPU of this process
and of its (waited for) workers, the loop, the digest, and the file the
replay's code came from (``code_from``), checked to lie in the tree.

    .venv/bin/python bench/replay_measure.py --database-url postgresql://... [--tree /work/wt/base]

``bench/projection.py --replay-only`` and ``bench/projection_ab.py`` run it
in a fresh interpreter (``projection_ab.py``: each side's own venv).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def children_cpu() -> float:
    """CPU seconds of this process's ended (and waited for) children."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


async def measure_replay(database_url: str, replay_batch: int) -> dict:
    """Replay the competency projection of ``database_url``'s log with the
    code first on ``sys.path``; on the running loop."""
    from lrs.store.pool import connect, create_pool
    from projections.competency.catalog import load_catalog
    from projections.competency.store import CompetencyProjection, digest
    from projections.replay import replay

    pool = await create_pool(database_url, min_size=1, max_size=2)
    try:
        events = await pool.fetchval("SELECT position FROM log_head")
        projection = CompetencyProjection(load_catalog())
        started, cpu, workers = time.monotonic(), time.process_time(), children_cpu()
        await replay(pool, projection, batch_size=replay_batch, connect=lambda: connect(database_url))
        replay_s, cpu_s = time.monotonic() - started, time.process_time() - cpu
        workers_s = children_cpu() - workers
        return {
            "events": events, "seconds": round(replay_s, 3), "events_per_s": round(events / replay_s, 1),
            "processes": projection.replay_processes,
            "python_cpu_s": round(cpu_s, 3), "python_cpu_us_per_event": round(cpu_s / events * 1e6, 2),
            "worker_cpu_s": round(workers_s, 3),
            "worker_cpu_us_per_event": round(workers_s / events * 1e6, 2),
            "loop": type(asyncio.get_running_loop()).__module__.split(".")[0],
            "code_from": str(Path(sys.modules[replay.__module__].__file__).resolve().parents[1]),
            "digest": await digest(pool),
        }
    finally:
        await pool.close()


def run_replay(tree: Path, database_url: str, replay_batch: int, loop: str = "uvloop") -> dict:
    """``measure_replay`` with ``tree``'s code first on the path, on ``loop``
    (uvloop, as ``lrs replay`` runs; ``asyncio`` for comparison)."""
    tree = tree.resolve()
    sys.path.insert(0, str(tree))
    if loop == "uvloop":
        import uvloop

        result = uvloop.run(measure_replay(database_url, replay_batch))
    else:
        result = asyncio.run(measure_replay(database_url, replay_batch))
    if Path(result["code_from"]) != tree:
        raise SystemExit(f"bench/replay_measure.py: replayed with {result['code_from']}'s code, not {tree}'s")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", required=True, help="a database whose log is filled")
    parser.add_argument("--tree", default=str(ROOT), help="the checkout whose replay is measured (default: this one)")
    parser.add_argument("--replay-batch", type=int, default=10_000, help="events per replay transaction (default: 10000)")
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop",
                        help="the event loop (default: uvloop, as `lrs replay` runs)")
    args = parser.parse_args(argv)
    print(json.dumps(run_replay(Path(args.tree), args.database_url, args.replay_batch, args.loop)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
