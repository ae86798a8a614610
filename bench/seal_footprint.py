"""Is the sealed HTTP workers' extra CPU in code that does the same work
either way the sealed worker's larger working set, or the machine's load?

Three services of one build, started once, warmed alike (``--learners``
learners each named ``--warm-passes`` times), then short batch runs
alternated among them, the order rotated every round:

* ``sealed``: ``LRS_SEAL_PERSONAL_DATA=true``;
* ``clear``: ``false``;
* ``ballast``: clear, with each HTTP worker holding the caches a sealing
  worker holds for ``--learners`` learners and touching one learner at
  random in them for each Statement (``bench/footprint_ballast``);
  with ``--third sealwork`` instead: clear, each request sealed in the
  worker and the sealed Statements thrown away (sealing's own CPU without
  the longer stored form); with ``--third copywork``: clear, only the
  sealing walk's copies made and thrown away.

If the sealed workers' extra beyond sealing itself were their footprint,
the ballast side's workers would spend more than the clear side's on the
same work.  Every side also times its collector
(``bench/gc_stats``), and each HTTP worker's resident memory is read after
every run.  Reported: each side's median CPU µs a statement (HTTP workers,
every process), collector ms per 1,000 statements, resident MiB, and the
medians of the rounds' differences with bootstrap 95% intervals.

    LRS_HTTP_WORKERS=2 LRS_PROJECTIONS_ENABLED=false python bench/seal_footprint.py \\
        --rounds 10 --duration 4 --label seal3

Results: ``bench/results/seal_footprint-<label>-<time>.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import math
import os
import shutil
import statistics
import sys
import tempfile
import types
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from ingest import (  # noqa: E402
    TEMPLATE_STATEMENTS, Learners, LogSampler, _Bodies, bench_target, run_one, run_stoppable, warm_learners,
)
from process_cpu import ServiceCpu, _children, _descendants, _group  # noqa: E402
from run_record import add_result_options, load_average, machine, write_result  # noqa: E402
from seal_ratio import median_interval  # noqa: E402

SIDES = ("sealed", "clear", "ballast")
SEAL_DISCARD = "sealwork"  # --third sealwork: in place of the ballast
COPY_ONLY = "copywork"  # --third copywork: only the sealing walk's copies
GRADUAL = "gradual"  # --third gradual: the ballast built one learner a Statement, among the requests' objects


def _side_env(side: str, learners: int, gc_dir: Path) -> dict[str, str]:
    return {
        "LRS_SEAL_PERSONAL_DATA": "true" if side == "sealed" else "false",
        "LRS_BENCH_BALLAST": str(learners) if side in ("ballast", GRADUAL) else "0",
        "LRS_BENCH_BALLAST_GRADUAL": "1" if side == GRADUAL else "0",
        "LRS_BENCH_SEAL_DISCARD": {SEAL_DISCARD: "1", COPY_ONLY: "copy"}.get(side, "0"),
        "LRS_BENCH_GC_STATS": str(gc_dir),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE / "footprint_ballast"),
                                                    os.environ.get("PYTHONPATH")])),
    }


@contextlib.asynccontextmanager
async def _service(args: argparse.Namespace, side: str, data_dir: Path):  # type: ignore[no-untyped-def]
    data_dir.mkdir(parents=True, exist_ok=True)
    gc_dir = data_dir / "gc"
    gc_dir.mkdir(exist_ok=True)
    target = types.SimpleNamespace(start_service=True, service_tree=args.service_tree, data_dir=str(data_dir),
                                   log_level="warning")
    env = _side_env(side, args.learners, gc_dir)
    before = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # read by the service when it starts, copied then
    try:
        async with bench_target(target) as (url, key, secret):
            _restore(before)
            auth = "Basic " + base64.b64encode(f"{key}:{secret}".encode()).decode()
            log = await LogSampler.connect(target.database_url)
            try:
                yield url, auth, ServiceCpu(target.service_pid, ended=True), target.service_pid, gc_dir, log
            finally:
                await log.close()
    finally:
        _restore(before)


def _restore(values: dict[str, str | None]) -> None:
    for name, value in values.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def workers(root: int) -> list[int]:
    tree = _children()
    return [p for p in _descendants(root, tree) if p != root and _group(p, root, True) == "http workers"]


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def gc_seconds(gc_dir: Path, pids: list[int]) -> float:
    """The collector's CPU seconds so far in ``pids`` (bench/gc_stats); each must have written its file."""
    total = 0.0
    for pid in pids:
        total += sum(json.loads((gc_dir / f"{pid}.json").read_text())["gc_s"])
    return total


def summarise(runs: list[dict], resamples: int) -> dict:
    rounds: dict[int, dict[str, dict]] = {}
    for run in runs:
        rounds.setdefault(run["round"], {})[run["side"]] = run
    complete = [r for r in rounds.values() if len(r) == len(SIDES)]

    def figure(run: dict, name: str) -> float:
        if name == "gc_ms_per_1000":
            return run["gc_ms_per_1000_statements"]
        if name == "rss":
            return run["worker_rss_mib"]
        if name == "statements_per_group":
            return (run.get("group_commits") or {}).get("statements_per_group", 0.0)
        return run["service_cpu_us_per_statement"].get(name, 0.0)

    out: dict = {"rounds": len(complete), "sides": {}, "differences": {}}
    for side in SIDES:
        out["sides"][side] = {name: round(statistics.median(figure(r[side], name) for r in complete), 2)
                              for name in ("http workers", "all", "postgresql", "relay", "nats-server",
                                           "gc_ms_per_1000", "rss", "statements_per_group")}
        out["sides"][side]["statements_per_s"] = round(statistics.median(r[side]["statements_per_s"]
                                                                         for r in complete), 1)
    third = SIDES[2]
    for a, b in (("sealed", "clear"), (third, "clear"), ("sealed", third)):
        for name in ("http workers", "all", "gc_ms_per_1000"):
            values = [figure(r[a], name) - figure(r[b], name) for r in complete]
            middle, low, high = median_interval(values, resamples)
            out["differences"][f"{a} - {b}, {name}"] = {
                "median": round(middle, 2), "95": [round(low, 2), round(high, 2)],
                "each": [round(v, 2) for v in values]}
    return out


def print_summary(summary: dict) -> None:
    print(f"{summary['rounds']} rounds, medians:")
    for side, figures in summary["sides"].items():
        print(f"  {side:<8} workers {figures['http workers']:>6} µs  all {figures['all']:>6} µs  "
              f"collector {figures['gc_ms_per_1000']:>5} ms/1000  {figures['statements_per_group']:>6} a group  RSS {figures['rss']:>6} MiB  "
              f"{figures['statements_per_s']:>8}/s")
    for name, d in summary["differences"].items():
        print(f"  {name:<34} {d['median']:+7.2f}  [{d['95'][0]:+.2f}, {d['95'][1]:+.2f}]")


async def main_async(args: argparse.Namespace) -> int:
    global SIDES
    SIDES = ("sealed", "clear", args.third)
    os.environ.setdefault("LRS_HTTP_WORKERS", "2")
    os.environ.setdefault("LRS_PROJECTIONS_ENABLED", "false")
    load_before = load_average()
    root = Path(tempfile.mkdtemp(prefix="seal-footprint-", dir=args.data_dir))
    runs: list[dict] = []
    warmed: dict[str, dict] = {}
    async with contextlib.AsyncExitStack() as stack:
        services = {side: await stack.enter_async_context(_service(args, side, root / side)) for side in SIDES}
        population = {side: Learners(args.learners, 0.0, args.seed) for side in SIDES}
        bodies = {side: _Bodies(args.batch, math.ceil(TEMPLATE_STATEMENTS / args.batch), population[side])
                  for side in SIDES}
        for side, (url, auth, *_) in services.items():
            warmed[side] = await warm_learners(url, auth, population[side], args.warm_passes, args.concurrency)
            print(f"{side}: warmed, {warmed[side]}", flush=True)
        for round_ in range(args.rounds):
            order = SIDES[round_ % 3:] + SIDES[:round_ % 3]
            if round_ % 6 >= 3:
                order = tuple(reversed(order))
            for side in order:
                url, auth, cpu, pid, gc_dir, log = services[side]
                pids = workers(pid)
                gc_before = gc_seconds(gc_dir, pids)
                await asyncio.sleep(1.1)  # the collector counters are written every second
                result = await run_one(url, auth, args.batch, args.concurrency, args.duration, args.warmup, cpu,
                                       log, population[side], bodies[side])
                await asyncio.sleep(1.1)
                # (the collector's time covers the warm-up second too; divided by the statements of both)
                gc_after = gc_seconds(gc_dir, pids)
                result.update(round=round_, side=side, worker_pids=pids,
                              worker_rss_mib=round(sum(rss_mib(p) for p in pids), 1),
                              gc_s=round(gc_after - gc_before, 4))
                rate_total = result["statements_per_s"] * (args.duration + args.warmup)
                result["gc_ms_per_1000_statements"] = round((gc_after - gc_before) * 1e6 / max(rate_total, 1), 3)
                runs.append(result)
                used = result["service_cpu_us_per_statement"] or {}
                print(f"round {round_ + 1:>2} {side:<8} {result['statements_per_s']:>8,.0f}/s  workers "
                      f"{used.get('http workers')}  all {used.get('all')}  collector "
                      f"{result['gc_ms_per_1000_statements']} ms/1000  group {result['group_commits']}  RSS {result['worker_rss_mib']} MiB  "
                      f"errors {result['errors'] or 0}  load {result['load_average_after'][0]}", flush=True)
    summary = summarise(runs, args.resamples)
    print_summary(summary)
    if not args.no_write:
        write_result({"benchmark": "seal_footprint", "machine": machine(args.service_tree, load_before=load_before),
                      "service_tree": args.service_tree or "this checkout", "note": args.note,
                      "settings": {k: v for k, v in vars(args).items() if k not in ("no_write", "note", "label")},
                      "warm_up": warmed, "summary": summary, "runs": runs}, "seal_footprint", args.label)
    shutil.rmtree(root, ignore_errors=True)
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--duration", type=float, default=4.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--learners", type=int, default=50_000)
    parser.add_argument("--warm-passes", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--resamples", type=int, default=4000)
    parser.add_argument("--third", choices=("ballast", SEAL_DISCARD, COPY_ONLY, GRADUAL), default="ballast",
                        help="the third side: clear with a sealing worker's caches (ballast), or clear with each "
                             "request sealed in the worker and the sealed Statements thrown away (sealwork), or only the "
                             "sealing walk's copies made and thrown away (copywork), or the ballast built one learner "
                             "a Statement prepared, among the requests' own objects, as a sealing worker's caches "
                             "grow (gradual)")
    parser.add_argument("--service-tree", metavar="CHECKOUT")
    parser.add_argument("--data-dir")
    add_result_options(parser)
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(run_stoppable(main_async(parse_args()), "seal_footprint"))
