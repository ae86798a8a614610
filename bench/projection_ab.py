"""Replay A/B: the same logs replayed by two checkouts, alternating.

Starts one PostgreSQL under ``--data-dir`` (kept between runs, so each log is
filled once), fills a database per evidence share with
``bench/projection.py``'s ``fill_log`` (the cmi5 mix, 0.33, and every
statement evidence, 1.0), then replays each log with each checkout in turn
(``--side NAME=PATH``, each a tree with its own bench/projection.py),
alternating the order every round.  Each replay runs in a fresh interpreter
of that checkout (``bench/projection.py --replay-only --database-url``), so
the two sides share the machine's state as nearly as a busy machine allows.
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
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from lrs.runtime.embedded import ensure_database  # noqa: E402
from lrs.runtime.postgres import EmbeddedPostgres  # noqa: E402
from projection import fill_log, settle  # noqa: E402

RESULTS_DIR = Path(__file__).resolve().parent / "results"
MIXES = {"cmi5": 0.33, "all-evidence": 1.0}


def _replay(side: Path, database_url: str, events: int) -> dict:
    done = subprocess.run(
        [sys.executable, str(side / "bench" / "projection.py"), "--replay-only", str(events),
         "--database-url", database_url, "--no-write"],
        capture_output=True, text=True, cwd=side, check=True,
    )
    start = done.stdout.index("{")
    return json.loads(done.stdout[start:])["replay"]


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
                    replayed = _replay(Path(path).resolve(), urls[mix], args.events)
                    replayed["digest_here"] = await _digest_here(urls[mix])
                    run = {"round": round_ + 1, "mix": mix, "side": label, "loadavg_before": load,
                           "when": datetime.now(timezone.utc).isoformat(timespec="seconds"), **replayed}
                    print(json.dumps(run), flush=True)
                    runs.append(run)
    finally:
        await pg.stop()
    for mix in args.mix:
        digests = {r["digest_here"] for r in runs if r["mix"] == mix}
        if len(digests) != 1:
            raise SystemExit(f"bench/projection_ab.py: the sides' projections differ on the {mix} log: {digests}")
        for label in sides:
            if len({r["digest"] for r in runs if r["mix"] == mix and r["side"] == label}) != 1:
                raise SystemExit(f"bench/projection_ab.py: {label}'s replays of the {mix} log differ")
    summary = {}
    for mix in args.mix:
        for label in sides:
            mine = [r for r in runs if r["mix"] == mix and r["side"] == label]
            rates = sorted(r["events_per_s"] for r in mine)
            cpu = sorted(r["python_cpu_us_per_event"] + r["worker_cpu_s"] / r["events"] * 1e6 for r in mine)
            summary[f"{mix} {label}"] = {
                "events_per_s": rates, "median_events_per_s": rates[(len(rates) - 1) // 2],
                "python_and_worker_cpu_us_per_event": [round(c, 2) for c in cpu],
            }
    return {
        "benchmark": "projection-replay-ab",
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "settings": {**vars(args), "sides": sides},
        "summary": summary,
        "runs": runs,
        "note": "PostgreSQL CPU is not in the CPU figures (the replaying process and its forked workers only)",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--side", action="append", required=True, metavar="NAME=PATH",
                        help="a checkout to replay with (give two or more)")
    parser.add_argument("--events", type=int, default=100_000, help="statements per log (default: 100000)")
    parser.add_argument("--learners", type=int, default=20_000, help="distinct learners (default: 20000)")
    parser.add_argument("--mix", action="append", choices=sorted(MIXES),
                        help="logs to replay (default: both)")
    parser.add_argument("--rounds", type=int, default=2, help="replays per side and log (default: 2)")
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
