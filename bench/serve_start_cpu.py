"""CPU of one ``lrs serve`` start, by process, with the project's own
packages compiled to bytecode or not, where PYTHONDONTWRITEBYTECODE is set.

A side ``bare`` removes ``__pycache__`` from ``lrs``, ``projections`` and
``connectors`` of the checkout (what a fresh clone has after
``uv sync --compile-bytecode``, which compiles the dependencies only); a side
``compiled`` runs ``python -m compileall -q lrs projections connectors``
first (the README's run command).  Each start is timed from launch to ready
plus ``--settle`` seconds, then stopped; the sides alternate.  The data
directory is kept from start to start, so only the first start runs initdb
(an unmeasured start goes first).

    PYTHONDONTWRITEBYTECODE=1 .venv/bin/python bench/serve_start_cpu.py --rounds 4 \\
        --data-dir /work/benchdata/NAME/start --label NAME
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import types
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest import bench_target, run_stoppable  # noqa: E402
from process_cpu import ServiceCpu  # noqa: E402
from run_record import add_result_options, load_average, machine, write_result  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("lrs", "projections", "connectors")
PYTHON_GROUPS = ("supervisor", "http workers", "relay", "projection")


def prepare(side: str) -> None:
    if side == "bare":
        for package in PACKAGES:
            for cache in (ROOT / package).rglob("__pycache__"):
                shutil.rmtree(cache)
    else:
        subprocess.run([sys.executable, "-m", "compileall", "-q", *PACKAGES], cwd=ROOT, check=True)


async def one_start(data_dir: str, settle: float) -> dict[str, float]:
    target = types.SimpleNamespace(start_service=True, service_tree=None, data_dir=data_dir, log_level="warning")
    async with bench_target(target):
        await asyncio.sleep(settle)
        used = ServiceCpu(target.service_pid, ended=True).sample()
    return {group: round(seconds, 3) for group, seconds in used.items() if " " not in group or group in PYTHON_GROUPS}


async def main_async(args: argparse.Namespace) -> int:
    os.environ["PYTHONDONTWRITEBYTECODE"] = "1"
    Path(args.data_dir).mkdir(parents=True, exist_ok=True)
    load_before = load_average()
    prepare("compiled")
    await one_start(args.data_dir, args.settle)  # initdb and the first migration: unmeasured
    runs = []
    for round_ in range(args.rounds):
        for side in (("bare", "compiled") if round_ % 2 == 0 else ("compiled", "bare")):
            prepare(side)
            used = await one_start(args.data_dir, args.settle)
            python = round(sum(used.get(group, 0.0) for group in PYTHON_GROUPS), 3)
            runs.append({"round": round_, "side": side, "python_cpu_s": python, "by_group": used,
                         "load_average_after": load_average()})
            print(f"round {round_ + 1} {side:<8} python processes {python:.2f} s CPU  {used}  load {load_average()[0]}",
                  flush=True)
    prepare("compiled")
    summary = {}
    for side in ("bare", "compiled"):
        mine = [r for r in runs if r["side"] == side]
        summary[side] = {"python_cpu_s_median": round(statistics.median(r["python_cpu_s"] for r in mine), 3)}
        for group in PYTHON_GROUPS:
            summary[side][f"{group}_median"] = round(statistics.median(r["by_group"].get(group, 0.0) for r in mine), 3)
        print(side, summary[side])
    if not args.no_write:
        write_result({"benchmark": "serve_start_cpu", "machine": machine(None, load_before=load_before),
                      "settings": {"rounds": args.rounds, "settle": args.settle}, "note": args.note,
                      "summary": summary, "runs": runs}, "serve_start_cpu", args.label)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=4, help="alternated pairs (default 4)")
    parser.add_argument("--settle", type=float, default=2.0, help="seconds after ready before the CPU is read")
    parser.add_argument("--data-dir", required=True, help="the service's data directory (kept between starts)")
    add_result_options(parser)
    return run_stoppable(main_async(parser.parse_args()), "serve_start_cpu")


if __name__ == "__main__":
    sys.exit(main())
