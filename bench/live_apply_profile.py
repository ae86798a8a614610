"""Where live apply's time goes: the runner's batches over a filled log.

Empties the competency projection of a log that ``bench/projection_ab.py``
filled (same ``--data-dir``), then applies the first ``--events`` events
(after the first ``--warm`` ones, applied unmeasured)
the way a runner does (``BatchApplier.apply_batch`` in batches of
``--batch``, each one transaction with the checkpoint), with every event
carrying its relayed message's claim (``lrs.event_contract.RelayedEvent``)
so the check against the log's hashes runs as for JetStream deliveries.
Reports wall and CPU per event (this process, PostgreSQL's processes from
/proc through bench/process_cpu.py), the share of the message check, and optionally a cProfile of the
apply (``--cprofile N``); ``STATEMENTS=1`` in the environment sums the wall
time of each SQL statement and the CPU its backend spent on it
(/proc/PID/schedstat).  Runs with the code of the checkout it lives in, or
with ``--code PATH``'s (run by that checkout's python: bench/live_apply_ab.py
--this-bench), measured alike.

``--state-without-derived`` writes each learner's state without its
competencies and certifications (they are rows of their own tables too):
the most that dropping them from the stored state could save, since nothing
here reads a state back (every learner stays in the projection's cache).
Since format 3 (branch proj-slim) no stored state holds its competencies, so
this drops only the certifications beyond what every state leaves out.
The states so written are not a projection anyone may read; the next run
empties it again.

    python bench/live_apply_profile.py --data-dir /work/benchdata/projection/ab --events 30000 --cprofile 30
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import sys
import time
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent


def _code_tree() -> Path:
    """``--code PATH``: apply with that checkout's code (run by its own venv's
    python), measured by this bench; by default the checkout it lives in."""
    return Path(sys.argv[sys.argv.index("--code") + 1]).resolve() if "--code" in sys.argv else ROOT


CODE = _code_tree()
sys.path.insert(0, str(CODE))

from bench.process_cpu import tree_cpu_s  # noqa: E402
from lrs.runtime.postgres import EmbeddedPostgres  # noqa: E402

MIXES = {"cmi5": 0.33, "all-evidence": 1.0}


async def _claimed_events(conn, after: int, count: int) -> list:
    """The log's events from ``after`` as relayed messages carry them (with their claims)."""
    from lrs.event_contract import from_record
    from lrs.store.log_reader import read_events_after
    from projections.events import LogEvent

    events = []
    for record in await read_events_after(conn, after, count):
        claim = from_record(record)
        events.append(LogEvent(claim.position, claim.tenant, claim.event_type, claim.payload, claim=claim))
    return events


def _backend_cpu_s(pid: int) -> float:
    """CPU seconds a PostgreSQL backend has run (``/proc/PID/schedstat``, in ns)."""
    with open(f"/proc/{pid}/schedstat") as f:
        return int(f.read().split()[0]) / 1e9


def time_statements() -> dict[str, list[float]]:
    """Wrap asyncpg's execute, fetch and copy to sum the wall time of each
    statement (by its first words): what the runner waits for PostgreSQL on;
    and the CPU its backend spent on it (its third figure)."""
    import asyncpg

    spent: dict[str, list[float]] = {}

    def wrap(name: str) -> None:
        inner = getattr(asyncpg.Connection, name)

        async def timed(self, first, *args, **kwargs):  # type: ignore[no-untyped-def]
            backend = self.get_server_pid()
            started, backend_cpu = time.monotonic(), _backend_cpu_s(backend)
            try:
                return await inner(self, first, *args, **kwargs)
            finally:
                label = " ".join(str(first).split())[:70] if name != "copy_records_to_table" else f"COPY {first}"
                row = spent.setdefault(label, [0, 0.0, 0.0])
                row[0] += 1
                row[1] += time.monotonic() - started
                row[2] += _backend_cpu_s(backend) - backend_cpu

        setattr(asyncpg.Connection, name, timed)

    for name in ("execute", "fetch", "fetchrow", "fetchval", "copy_records_to_table"):
        wrap(name)
    return spent


def write_states_without_derived() -> None:
    """Live apply encodes states without their competencies and certifications (a measurement only)."""
    import msgspec

    import projections.competency.store as store
    from projections.competency.codec import encode_state

    def evidence_part(state):  # type: ignore[no-untyped-def]
        return encode_state(msgspec.structs.replace(state, competencies={}, certifications={}))

    store.encode_state = evidence_part


async def run(database_url: str, postmaster: int, events: int, batch: int, profile: int, warm: int = 0) -> dict:
    from lrs.store.pool import create_pool
    from projections.applying import BatchApplier
    from projections.checkpoints import CheckpointStore
    from projections.competency.catalog import load_catalog
    from projections.competency.store import CompetencyProjection

    pool = await create_pool(database_url, min_size=1, max_size=2)
    try:
        projection = CompetencyProjection(load_catalog())
        checkpoints = CheckpointStore(projection)
        applier = BatchApplier(pool, projection, checkpoints, max_attempts=5)
        async with pool.acquire() as conn, conn.transaction():
            await projection.reset(conn)
            await checkpoints.lock(conn)
            await checkpoints.advance(conn, 0)
            await conn.execute("DELETE FROM projection_parked WHERE name = 'competency'")
        async with pool.acquire() as conn:
            for start in range(0, warm, 5000):  # unmeasured: the learners' states grow to their later size
                await applier.apply_batch(await _claimed_events(conn, start, min(5000, warm - start)))
            batches = [await _claimed_events(conn, start, batch) for start in range(warm, warm + events, batch)]
        profiler = cProfile.Profile() if profile else None
        spent = time_statements() if os.environ.get("STATEMENTS") else None
        if os.environ.get("NO_GC"):
            import gc
            gc.disable()
        wall, cpu, pg_cpu = time.monotonic(), time.process_time(), tree_cpu_s(postmaster)
        if profiler:
            profiler.enable()
        for chunk in batches:
            await applier.apply_batch(chunk)
        if profiler:
            profiler.disable()
        wall, cpu, pg_cpu = time.monotonic() - wall, time.process_time() - cpu, tree_cpu_s(postmaster) - pg_cpu
        out = {
            "events": events, "batch": batch, "after_unmeasured_events": warm, "seconds": round(wall, 3), "events_per_s": round(events / wall),
            "python_cpu_us_per_event": round(cpu / events * 1e6, 2),
            "postgres_cpu_us_per_event": round(pg_cpu / events * 1e6, 2),
        }
        if spent is not None:
            out["statements_wall_us_per_event"] = {  # [calls, wall µs, the backend's CPU µs] per event
                label: [calls, round(seconds / events * 1e6, 2), round(backend / events * 1e6, 2)]
                for label, (calls, seconds, backend) in sorted(spent.items(), key=lambda kv: -kv[1][1])
                if "SAVEPOINT" not in label
            }
        if profiler:
            text = io.StringIO()
            pstats.Stats(profiler, stream=text).sort_stats(os.environ.get("SORT", "tottime")).print_stats(profile)
            out["profile"] = text.getvalue().replace(str(CODE) + "/", "")
        return out
    finally:
        await pool.close()


async def main_async(args: argparse.Namespace) -> list[dict]:
    pg = EmbeddedPostgres(Path(args.data_dir))
    await pg.start()
    results = []
    try:
        for mix, database in zip(args.mix, databases(args)):
            url = pg.url_for(database)
            result = await run(url, pg.pid, args.events, args.batch, args.cprofile, args.warm)
            result["mix"] = mix
            result["state_without_derived"] = args.state_without_derived
            result["loadavg"] = [round(x, 2) for x in os.getloadavg()]
            results.append(result)
    finally:
        await pg.stop()
    return results


def databases(args: argparse.Namespace) -> list[str]:
    """The database of the filled log each of ``args.mix`` is applied from."""
    return [args.database or f"replay_{mix.replace('-', '_')}_{args.log_events}" for mix in args.mix]


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--log-events", type=int, default=100_000, help="the filled log's length (its database name)")
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--database", help="the database of the filled log (default: replay_<mix>_<log events>); "
                        "a copy of it made with CREATE DATABASE ... TEMPLATE can carry another checkout's migrations")
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--warm", type=int, default=0, metavar="N",
                        help="apply the first N events unmeasured first, so the measured batches meet learners "
                             "with the states of a longer log (default: 0)")
    parser.add_argument("--mix", action="append", choices=sorted(MIXES))
    parser.add_argument("--cprofile", type=int, default=0, metavar="N")
    parser.add_argument("--code", metavar="PATH", help="apply with that checkout's code (default: this one's)")
    parser.add_argument("--state-without-derived", action="store_true",
                        help="write states without their competencies and certifications (a ceiling, not a projection)")
    args = parser.parse_args(argv)
    args.mix = args.mix or list(MIXES)
    return args


def main() -> int:
    args = arguments()
    if args.state_without_derived:
        write_states_without_derived()
    for result in asyncio.run(main_async(args)):
        profile = result.pop("profile", None)
        print(json.dumps(result, indent=2))
        if profile:
            print(profile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
