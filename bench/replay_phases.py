"""Where a replay's time goes: wall and CPU per phase, µs per event.

Replays logs that ``bench/projection_ab.py`` filled (same ``--data-dir``) in
this process, with each phase of ``projections.replay.replay`` and of the
competency rebuild timed (wall seconds; CPU of this process; CPU of
PostgreSQL's processes, by psutil; CPU of the forked read and fold workers,
counted when they have ended), and optionally under cProfile
(``--cprofile N``: the N functions with most own time).  Runs with the code
of the checkout it lives in.

    python bench/replay_phases.py --data-dir /work/benchdata/projection/ab --events 100000 --cprofile 25

``REPLAY_PROCESSES=N`` sets the replay's processes and ``REPLAY_READERS=N``
how many of them read the log (parallel_replay.py), instead of the defaults.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import resource
import sys
import time
from pathlib import Path
from typing import Any


ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.process_cpu import tree_cpu_s  # noqa: E402
from lrs.runtime.postgres import EmbeddedPostgres  # noqa: E402

MIXES = {"cmi5": 0.33, "all-evidence": 1.0}


class Phases:
    def __init__(self, postmaster: int) -> None:
        self.postmaster = postmaster
        self.rows: dict[str, list[float]] = {}
        self.started = self._now()

    def _now(self) -> tuple[float, float, float, float]:
        children = resource.getrusage(resource.RUSAGE_CHILDREN)  # forked workers, once waited for
        return (time.monotonic(), time.process_time(), tree_cpu_s(self.postmaster),
                children.ru_utime + children.ru_stime)

    def mark(self, name: str) -> None:
        now = self._now()
        row = self.rows.setdefault(name, [0.0, 0.0, 0.0, 0.0])
        for i in range(4):
            row[i] += now[i] - self.started[i]
        self.started = now


def instrument(phases: Phases) -> None:
    """Wrap the replay's phases so each marks its end."""
    from projections import replay as replay_mod
    from projections.competency import store

    def wrap(module: Any, name: str, label: str, before: str | None = None) -> None:
        inner = getattr(module, name)

        async def timed(*args: Any, **kwargs: Any) -> Any:
            if before is not None:
                phases.mark(before)
            result = await inner(*args, **kwargs)
            phases.mark(label)
            return result

        setattr(module, name, timed)

    from projections.competency import read_shares

    # one process reads (parallel_replay.py), then the learners are folded in shares (fold_shares.py)
    wrap(read_shares, "read_log", "read and interpret the log", before="set up the scratch tables")
    wrap(read_shares, "copy_learners", "fold, encode and copy the learners")
    # every process reads and keeps its share (read_shares.py): this process's phases; the
    # workers' CPU is counted once they have ended (in the phase that waits for them)
    wrap(read_shares, "_read_all", "read and interpret the log", before="fork the share workers")
    wrap(read_shares, "copy_share", "fold, encode and copy the learners")
    # both
    wrap(read_shares, "rebuild_links", "identity links", before="set up the scratch tables")
    wrap(read_shares, "copy_statements", "copy owners, voids, mismatches",
         before="wait for the share workers' reads, settle ids")
    wrap(store, "rebuild_roster", "roster")
    wrap(replay_mod, "_index_and_analyse", "build the indexes and analyse")
    from projections import checkpoints

    replace = checkpoints.CheckpointStore.replace

    async def replace_marked(self: Any, conn: Any, position: int) -> None:
        phases.mark("analyse the rebuilt tables (a bulk rebuild analysed them with its indexes)")
        await replace(self, conn, position)

    checkpoints.CheckpointStore.replace = replace_marked  # type: ignore[method-assign]
    original = store.CompetencyProjection.finish_rebuild

    async def finish_rebuild(self: Any, conn: Any) -> None:
        phases.mark("apply what came meanwhile")
        await original(self, conn)
        phases.mark("finish the rebuilt tables (place, recount, series)")

    store.CompetencyProjection.finish_rebuild = finish_rebuild  # type: ignore[method-assign]


async def run(database_url: str, postmaster: int, profile: int) -> dict:
    from lrs.store.pool import connect, create_pool
    from projections.competency.catalog import load_catalog
    from projections.competency.store import CompetencyProjection, digest
    from projections.replay import replay

    pool = await create_pool(database_url, min_size=1, max_size=2)
    try:
        events = await pool.fetchval("SELECT position FROM log_head")
        processes = int(os.environ["REPLAY_PROCESSES"]) if os.environ.get("REPLAY_PROCESSES") else None
        readers = int(os.environ["REPLAY_READERS"]) if os.environ.get("REPLAY_READERS") else None
        projection = CompetencyProjection(load_catalog(), replay_processes=processes, replay_readers=readers)
        phases = Phases(postmaster)
        instrument(phases)
        profiler = cProfile.Profile() if profile else None
        started = time.monotonic()
        if profiler:
            profiler.enable()
        await replay(pool, projection, connect=lambda: connect(database_url))
        if profiler:
            profiler.disable()
        phases.mark("end")
        seconds = time.monotonic() - started
        out: dict[str, Any] = {
            "events": events, "seconds": round(seconds, 3), "events_per_s": round(events / seconds),
            "phases_us_per_event (wall, python cpu, postgres cpu, worker cpu)": {
                name: [round(v / events * 1e6, 2) for v in row] for name, row in phases.rows.items()
            },
            "cpu_us_per_event": {
                "python": round(sum(r[1] for r in phases.rows.values()) / events * 1e6, 2),
                "workers": round(sum(r[3] for r in phases.rows.values()) / events * 1e6, 2),
                "postgres": round(sum(r[2] for r in phases.rows.values()) / events * 1e6, 2),
            },
            "digest": await digest(pool),
        }
        if profiler:
            text = io.StringIO()
            pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(profile)
            out["profile"] = text.getvalue().replace(str(ROOT) + "/", "")
        return out
    finally:
        await pool.close()


async def main_async(args: argparse.Namespace) -> list[dict]:
    pg = EmbeddedPostgres(Path(args.data_dir))
    await pg.start()
    results = []
    try:
        for mix in args.mix:
            url = pg.url_for(f"replay_{mix.replace('-', '_')}_{args.events}")
            result = await run(url, pg.pid, args.cprofile)
            result["mix"] = mix
            result["loadavg"] = [round(x, 2) for x in os.getloadavg()]
            results.append(result)
    finally:
        await pg.stop()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--mix", action="append", choices=sorted(MIXES))
    parser.add_argument("--cprofile", type=int, default=0, metavar="N")
    args = parser.parse_args()
    args.mix = args.mix or list(MIXES)
    for result in asyncio.run(main_async(args)):
        profile = result.pop("profile", None)
        print(json.dumps(result, indent=2))
        if profile:
            print(profile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
