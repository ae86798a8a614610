"""What the cyclic garbage collector costs live apply: ``bench/live_apply_profile.py``'s
run (a checkout's ``BatchApplier`` over a log ``bench/projection_ab.py`` filled),
with every collection timed by generation (``gc.callbacks``), then, with the
projection's learner cache still full, the time of a full collection and the
objects the collector tracks.

    python bench/live_apply_gc.py --data-dir /work/benchdata/proj-gc/ab --warm 70000 --events 30000 --settle
    python bench/live_apply_gc.py --data-dir /work/benchdata/proj-gc/ab --warm 70000 --events 30000 --tree /work/wt/base

``--settle`` does at start what the HTTP workers and the relay do
(``lrs.commands.common.settle_heap``: freeze what exists, the service's
collection thresholds); without it the process runs as ``lrs project`` does
(the interpreter's thresholds, nothing frozen; settling it was tried on
branch proj-gc and saved nothing measurable, docs/scaling.md).  Collections are
counted over the measured batches only (after the warm-up and the reads).

Run it with the interpreter of the checkout given as ``--tree`` (its venv), so
the code measured is that checkout's.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent


class CollectionTimes:
    """Seconds and count of the collections of each generation (``gc.callbacks``)."""

    def __init__(self) -> None:
        self.seconds = [0.0, 0.0, 0.0]
        self.count = [0, 0, 0]
        self._started = 0.0
        self.counting = False

    def __call__(self, phase: str, info: dict) -> None:
        if not self.counting:
            return
        if phase == "start":
            self._started = time.perf_counter()
        else:
            generation = info["generation"]
            self.seconds[generation] += time.perf_counter() - self._started
            self.count[generation] += 1


def full_collection_ms(rounds: int = 5) -> float:
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        gc.collect()
        best = min(best, time.perf_counter() - started)
    return round(best * 1e3, 3)


async def measure(args: argparse.Namespace) -> dict:
    import bench.live_apply_profile as profile
    from lrs.runtime.postgres import EmbeddedPostgres
    from projections.competency import store

    projections: list = []
    made = store.CompetencyProjection.__init__

    def keep(self, *a, **kw):  # the run's projection, kept to look at its cache after
        made(self, *a, **kw)
        projections.append(self)

    store.CompetencyProjection.__init__ = keep
    times = CollectionTimes()
    reads = -(-args.warm // 5000) + -(-args.events // args.batch)  # live_apply_profile.run's reads
    read = profile._claimed_events

    async def counted(*a, **kw):  # the measured batches start after the last read
        nonlocal reads
        events = await read(*a, **kw)
        reads -= 1
        if reads == 0:
            # the reads' objects (every measured batch, read ahead) are
            # collected once here, so the measured collections meet only
            # what the batches leave, as in a runner fed message by message
            gc.collect()
            times.counting = True
        return events

    profile._claimed_events = counted
    pg = EmbeddedPostgres(Path(args.data_dir))
    await pg.start()
    try:
        url = pg.url_for(f"replay_{args.mix.replace('-', '_')}_{args.log_events}")
        if args.settle:
            from lrs.commands.common import settle_heap

            settle_heap()
        gc.callbacks.append(times)
        out = await profile.run(url, pg.pid, args.events, args.batch, 0, args.warm)
        gc.callbacks.remove(times)
    finally:
        await pg.stop()
    cache = projections[-1]._cache
    out.update(
        tree=args.tree,
        mix=args.mix,
        settled=args.settle,
        collections=times.count,
        collection_s=[round(s, 3) for s in times.seconds],
        collection_us_per_event=round(sum(times.seconds) / args.events * 1e6, 2),
        cached_learners=len(cache),
        tracked_objects=len(gc.get_objects()),  # frozen ones are not listed
        frozen_objects=gc.get_freeze_count(),
        full_collection_ms=full_collection_ms(),
        loadavg=[round(x, 2) for x in os.getloadavg()],
    )
    cache.clear()
    out["full_collection_ms_cache_emptied"] = full_collection_ms()
    out["tracked_objects_cache_emptied"] = len(gc.get_objects())
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tree", default=str(HERE), help="checkout whose code is measured (default: this one)")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--log-events", type=int, default=100_000)
    parser.add_argument("--mix", default="all-evidence", choices=["all-evidence", "cmi5"])
    parser.add_argument("--warm", type=int, default=70_000)
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--settle", action="store_true", help="settle the heap at start as the HTTP workers and the relay do")
    parser.add_argument("--output", help="append the result here as a JSON line")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(args.tree).resolve()))
    result = asyncio.run(measure(args))
    text = json.dumps(result)
    print(text)
    if args.output:
        with open(args.output, "a") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
