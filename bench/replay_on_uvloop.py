"""Replays of one log on uvloop, as ``lrs replay competency`` runs them
(asyncio's own loop never made a pipe non-blocking): each ``--side``
checkout's replay by ``bench/replay_measure.py`` in a fresh interpreter of
that checkout's venv, the sides alternating, every run's outcome written down (its
rate, or the last line of what it raised) with the load average.

    python bench/replay_on_uvloop.py --side start=/work/wt/base --side after=. --events 100000 --rounds 6 \\
        --data-dir /work/benchdata/NAME/uvloop --out bench/results/replay-on-uvloop-NAME.txt
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.projection import fill_log, settle  # noqa: E402
from lrs.runtime.embedded import ensure_database  # noqa: E402
from lrs.runtime.postgres import EmbeddedPostgres  # noqa: E402

MEASURE = Path(__file__).resolve().parent / "replay_measure.py"


def replay_once(tree: Path, url: str) -> str:
    run = subprocess.run([str(tree / ".venv/bin/python"), str(MEASURE), "--database-url", url, "--tree", str(tree)],
                         cwd=tree, capture_output=True, text=True)
    if run.returncode != 0:
        return "FAILED " + (run.stderr.strip().splitlines() or ["(nothing on stderr)"])[-1][:300]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    return f"ok {result['events_per_s']} events/s, {result['processes']} processes, digest {result['digest'][:12]}"


async def main(args: argparse.Namespace) -> None:
    sides = [(name, Path(tree).resolve()) for name, tree in (side.split("=", 1) for side in args.side)]
    data = Path(args.data_dir)
    shutil.rmtree(data, ignore_errors=True)
    pg = EmbeddedPostgres(data / "pg")
    lines = [f"replays of {args.events} events (every statement evidence) on uvloop, sides alternating"]
    try:
        server = await pg.start()
        await ensure_database(server, "lrs")
        url = pg.url_for("lrs")
        await fill_log(url, args.events, 20_000, 1, 0.01, 1.0)
        await settle(url)
        for round_ in range(args.rounds):
            for name, tree in sides:
                load = os.getloadavg()[0]
                lines.append(f"{name} round {round_}: {replay_once(tree, url)} (load {load:.1f})")
                print(lines[-1], flush=True)
    finally:
        await pg.stop()
        shutil.rmtree(data, ignore_errors=True)
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--side", action="append", required=True, metavar="NAME=CHECKOUT")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--out")
    asyncio.run(main(parser.parse_args()))
