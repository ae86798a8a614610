"""Replay A/B: the same logs replayed by two checkouts, alternating.

Starts one PostgreSQL under ``--data-dir`` (kept between runs, so each log is
filled once), fills a database per evidence share with
``bench/projection.py``'s ``fill_log`` (the cmi5 mix, 0.33, and every
statement evidence, 1.0), then replays each log with each checkout in turn
(``--side NAME=PATH``), alternating the order every round.  Each replay runs
in a fresh interpreter of that checkout's venv, on uvloop as ``lrs replay``
does, measured by this checkout's ``bench/replay_measure.py`` with the side's
code first on the path (checked: the result names the tree it ran), so the
two sides are measured alike and share the machine's state as nearly as a
busy machine allows.  ``--rounds 0`` only fills the logs.
Reports events/s, the CPU seconds per event of the replaying process and of
its workers, the load average, and the digest of the rebuilt projection: the
digests of the two sides on one log must be equal (the run fails otherwise).
Each rebuilt projection is also digested by this checkout's code
(``digest_here``): where the sides store states in different formats, their
own digests differ by definition (each hashes its own layout) and it is
these that must be equal (codec.digest_bytes hashes an older format's state
as this checkout would store it).

    python bench/projection_ab.py --side before=/path/to/main --side after=. \\
        --events 100000 --rounds 2 --data-dir /work/benchdata/projection/ab
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench.process_cpu import tree_cpu_s  # noqa: E402
from lrs.runtime.embedded import ensure_database  # noqa: E402
from lrs.runtime.postgres import EmbeddedPostgres  # noqa: E402
from projection import fill_log, replay_in_own_process, settle  # noqa: E402

RESULTS_DIR = Path(__file__).resolve().parent / "results"
MIXES = {"cmi5": 0.33, "all-evidence": 1.0}


def _replay(side: Path, database_url: str) -> dict:
    """One replay with ``side``'s code, by its own venv's interpreter when it has one."""
    python = side / ".venv" / "bin" / "python"
    return replay_in_own_process(database_url, 10_000, tree=side, python=str(python) if python.exists() else None)


def check_digests(runs: list[dict], mixes: list[str], sides: dict) -> None:
    """Every replay of one log must leave the same projection (digested by
    this checkout), and each side's own digests of it must agree."""
    for mix in mixes:
        digests = {r["digest_here"] for r in runs if r["mix"] == mix}
        if len(digests) > 1:
            raise SystemExit(f"bench/projection_ab.py: the sides' projections differ on the {mix} log: {digests}")
        for label in sides:
            if len({r["digest"] for r in runs if r["mix"] == mix and r["side"] == label}) > 1:
                raise SystemExit(f"bench/projection_ab.py: {label}'s replays of the {mix} log differ")


async def _digest_here(database_url: str) -> str:
    """The audit digest of the projection in ``database_url``, by this checkout's code."""
    import asyncpg

    from projections.competency.store import digest

    conn = await asyncpg.connect(database_url)
    try:
        return await digest(conn)
    finally:
        await conn.close()


async def main_async(args: argparse.Namespace) -> dict:
    sides = dict(s.split("=", 1) for s in args.side)
    pg = EmbeddedPostgres(Path(args.data_dir))
    server = await pg.start()
    runs: list[dict] = []
    try:
        urls = {}
        for mix in args.mix:
            name = f"replay_{mix.replace('-', '_')}_{args.events}"
            await ensure_database(server, name)
            urls[mix] = pg.url_for(name)
            await fill_log(urls[mix], args.events, args.learners, 1, 0.01, MIXES[mix])
            await settle(urls[mix])
        order = list(sides.items())
        for round_ in range(args.rounds):
            for mix in args.mix:
                for label, path in (order if round_ % 2 == 0 else order[::-1]):
                    load = [round(x, 2) for x in os.getloadavg()]
                    pg_before = tree_cpu_s(pg.pid, ended=True)
                    replayed = _replay(Path(path).resolve(), urls[mix])
                    pg_s = tree_cpu_s(pg.pid, ended=True) - pg_before
                    replayed["postgresql_cpu_us_per_event"] = round(pg_s / replayed["events"] * 1e6, 2)
                    replayed["digest_here"] = await _digest_here(urls[mix])
                    run = {"round": round_ + 1, "mix": mix, "side": label, "loadavg_before": load,
                           "when": datetime.now(timezone.utc).isoformat(timespec="seconds"), **replayed}
                    print(json.dumps(run), flush=True)
                    runs.append(run)
    finally:
        await pg.stop()
    check_digests(runs, args.mix, sides)
    summary = {}
    for mix in args.mix:
        for label in sides:
            mine = [r for r in runs if r["mix"] == mix and r["side"] == label]
            if not mine:
                continue
            rates = sorted(r["events_per_s"] for r in mine)
            cpu = sorted(r["python_cpu_us_per_event"] + r["worker_cpu_s"] / r["events"] * 1e6 for r in mine)
            summary[f"{mix} {label}"] = {
                "events_per_s": rates, "median_events_per_s": rates[(len(rates) - 1) // 2],
                "python_and_worker_cpu_us_per_event": [round(c, 2) for c in cpu],
                "python_cpu_us_per_event": sorted(r["python_cpu_us_per_event"] for r in mine),
                "worker_cpu_us_per_event": sorted(round(r["worker_cpu_s"] / r["events"] * 1e6, 2) for r in mine),
                "postgresql_cpu_us_per_event": sorted(r["postgresql_cpu_us_per_event"] for r in mine),
            }
    return {
        "benchmark": "projection-replay-ab",
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "settings": {**vars(args), "sides": sides},
        "summary": summary,
        "runs": runs,
        "note": "python_and_worker_cpu: the replaying process and its forked workers; postgresql_cpu: the "
                "server's processes, those that ended during the replay (its connections' backends) included",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--side", action="append", required=True, metavar="NAME=PATH",
                        help="a checkout to replay with (give two or more)")
    parser.add_argument("--events", type=int, default=100_000, help="statements per log (default: 100000)")
    parser.add_argument("--learners", type=int, default=20_000, help="distinct learners (default: 20000)")
    parser.add_argument("--mix", action="append", choices=sorted(MIXES),
                        help="logs to replay (default: both)")
    parser.add_argument("--rounds", type=int, default=2,
                        help="replays per side and log; 0 fills the logs only (default: 2)")
    parser.add_argument("--data-dir", required=True, help="where PostgreSQL keeps the filled logs")
    parser.add_argument("--out", help="write the result here (default: print only)")
    args = parser.parse_args(argv)
    args.mix = args.mix or list(MIXES)
    result = asyncio.run(main_async(args))
    print(json.dumps(result["summary"], indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
