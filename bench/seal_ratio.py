"""Sealing's cost as one build's sealed/clear CPU ratio, robust to a noisy
machine: two services of the same build, one with
``LRS_SEAL_PERSONAL_DATA=true`` and one with ``false``, both started once
and warmed, then many short runs alternated between them.

Issue 18 asks that sealing cost at most 10% more.  One long run of each
side (bench/ingest.py) cannot show that here: on a shared 2-core machine
identical runs of one build move 20-40% in CPU a statement.  This bench
pairs a sealed run with a clear run taken right after it (or before: the
order alternates every round, so a trend in the machine's load favours
neither side), for each batch size and each learner mode, and reports the
**median of the pairs' ratios** of CPU µs a statement (every process of the
service: HTTP workers, PostgreSQL, relay, nats-server; the load generator
is not counted) with a **bootstrap 95% interval** of that median
(``--resamples`` draws of the rounds with replacement).  The HTTP workers'
ratio, where sealing runs, is reported the same way.

Learner modes (``--modes``):

* ``programme``: a running programme, ``--learners`` learners each named
  the same way, drawn at random; both services are first sent every
  learner ``--warm-passes`` times (bench/ingest.py's ``--learners N
  --warm-passes K``), so every key and (mostly) every sealed form is known.
* ``worst``: a new name every statement (bench/ingest.py's default, the
  mboxes of the same 50,000 learners): every Agent is sealed anew (an
  encryption, its tag and row, a new ``sealed_identities`` row); the
  bodies go on from run to run, so no later run repeats an earlier name.

    LRS_HTTP_WORKERS=2 LRS_PROJECTIONS_ENABLED=false python bench/seal_ratio.py \\
        --rounds 12 --duration 4 --batch-sizes 100,1 --concurrency 16,32 --label seal

``--service-tree CHECKOUT`` runs another checkout's ``lrs serve`` (with
its own .venv) on both sides, e.g. the start of a branch, to compare the
ratios of two builds.  Results: ``bench/results/seal_ratio-<label>-<time>.json``.

Ctrl-C (SIGINT) or SIGTERM stops it at once, whenever it comes: both
services are stopped (each ``lrs serve`` TERMed and waited for), their data
removed, nothing written, exit status 130.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import math
import os
import random
import shutil
import statistics
import sys
import tempfile
import types
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest import (  # noqa: E402
    TEMPLATE_STATEMENTS, Learners, _Bodies, bench_target, run_one, run_stoppable, warm_learners,
)
from process_cpu import ServiceCpu  # noqa: E402
from run_record import add_result_options, load_average, machine, write_result  # noqa: E402

SIDES = {"sealed": "true", "clear": "false"}
MODES = ("programme", "worst")


def median_interval(values: list[float], resamples: int, seed: int = 1) -> tuple[float, float, float]:
    """(median, low, high): the median of ``values`` and the 2.5th and
    97.5th percentiles of the medians of ``resamples`` draws of as many
    values with replacement (a percentile bootstrap)."""
    rng = random.Random(seed)
    medians = sorted(statistics.median(rng.choices(values, k=len(values))) for _ in range(resamples))
    low = medians[int(0.025 * (resamples - 1))]
    high = medians[math.ceil(0.975 * (resamples - 1))]
    return statistics.median(values), low, high


def at_equal_rate(points: list[tuple[float, float]], resamples: int, seed: int = 1) -> tuple[float, float, float]:
    """(ratio, low, high) of CPU a statement sealed/clear where both sides ran
    at the same statements a second: the least-squares line of log(CPU
    ratio) on log(rate ratio) through the pairs ``points`` (rate ratio, CPU
    ratio), taken at a rate ratio of 1, with a bootstrap 95% interval.  At a
    fixed number of clients a side that a busy machine slowed down commits
    smaller groups and spends more CPU on each statement; this takes that
    out, and with it any slowing down that sealing itself causes."""

    def intercept(sample: list[tuple[float, float]]) -> float | None:
        xs, ys = [math.log(x) for x, _ in sample], [math.log(y) for _, y in sample]
        mx, my = statistics.fmean(xs), statistics.fmean(ys)
        sxx = sum((x - mx) ** 2 for x in xs)
        if sxx == 0:
            return None
        slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
        return math.exp(my - slope * mx)

    rng = random.Random(seed)
    found = intercept(points)
    draws = sorted(v for v in (intercept(rng.choices(points, k=len(points))) for _ in range(resamples))
                   if v is not None)
    if found is None or not draws:
        return float("nan"), float("nan"), float("nan")
    return found, draws[int(0.025 * (len(draws) - 1))], draws[math.ceil(0.975 * (len(draws) - 1))]


def summarise(runs: list[dict], resamples: int) -> list[dict]:
    """For each (mode, batch): each side's median CPU µs a statement, and the
    median sealed/clear ratio of the rounds' pairs with its interval, for
    every process and for the HTTP workers alone."""
    rows = []
    for mode, batch in dict.fromkeys((r["mode"], r["batch_size"]) for r in runs):
        pairs: dict[int, dict[str, dict]] = {}
        for run in runs:
            if (run["mode"], run["batch_size"]) == (mode, batch) and run["service_cpu_us_per_statement"]:
                pairs.setdefault(run["round"], {})[run["side"]] = run
        pairs = {k: v for k, v in pairs.items() if len(v) == 2}
        if not pairs:
            continue
        row: dict = {"mode": mode, "batch": batch, "pairs": len(pairs)}
        for group, name in (("all", "all"), ("http workers", "workers")):
            sealed = [p["sealed"]["service_cpu_us_per_statement"].get(group, 0.0) for p in pairs.values()]
            clear = [p["clear"]["service_cpu_us_per_statement"].get(group, 0.0) for p in pairs.values()]
            ratios = [s / c for s, c in zip(sealed, clear) if c > 0]
            middle, low, high = median_interval(ratios, resamples)
            rates = [p["sealed"]["statements_per_s"] / p["clear"]["statements_per_s"] for p in pairs.values()]
            level, level_low, level_high = at_equal_rate(
                [(r, s / c) for r, s, c in zip(rates, sealed, clear) if c > 0 and r > 0], resamples)
            row[name] = {
                "sealed_us_median": round(statistics.median(sealed), 1),
                "clear_us_median": round(statistics.median(clear), 1),
                "ratio_median": round(middle, 3), "ratio_95": [round(low, 3), round(high, 3)],
                "ratio_at_equal_rate": round(level, 3), "ratio_at_equal_rate_95": [round(level_low, 3),
                                                                                   round(level_high, 3)],
                "ratios": [round(r, 3) for r in ratios],
                "rate_ratios": [round(r, 3) for r in rates],
            }
        # Where the difference goes: each process group's median CPU a statement
        # on each side, and the median of the pairs' differences.
        groups = sorted({g for p in pairs.values() for side in SIDES
                         for g in p[side]["service_cpu_us_per_statement"] if not g.endswith(" system")})
        row["by_process"] = {
            group: {
                "sealed_us_median": round(statistics.median(
                    p["sealed"]["service_cpu_us_per_statement"].get(group, 0.0) for p in pairs.values()), 1),
                "clear_us_median": round(statistics.median(
                    p["clear"]["service_cpu_us_per_statement"].get(group, 0.0) for p in pairs.values()), 1),
                "difference_us_median": round(statistics.median(
                    p["sealed"]["service_cpu_us_per_statement"].get(group, 0.0)
                    - p["clear"]["service_cpu_us_per_statement"].get(group, 0.0) for p in pairs.values()), 1),
            }
            for group in groups
        }
        row["statements_per_s_median"] = {
            side: round(statistics.median(p[side]["statements_per_s"] for p in pairs.values()), 1) for side in SIDES}
        rows.append(row)
    return rows


def print_summary(summary: list[dict]) -> None:
    for row in summary:
        every, workers = row["all"], row["workers"]
        print(f"{row['mode']:<9} batch={row['batch']:<3} {row['pairs']} pairs: sealed/clear every process "
              f"{every['ratio_median']:.3f} [{every['ratio_95'][0]:.3f}, {every['ratio_95'][1]:.3f}] "
              f"({every['sealed_us_median']} / {every['clear_us_median']} µs), workers {workers['ratio_median']:.3f} "
              f"[{workers['ratio_95'][0]:.3f}, {workers['ratio_95'][1]:.3f}] "
              f"({workers['sealed_us_median']} / {workers['clear_us_median']} µs)", flush=True)
        print(f"    at equal statements/s: every process {every['ratio_at_equal_rate']:.3f} "
              f"[{every['ratio_at_equal_rate_95'][0]:.3f}, {every['ratio_at_equal_rate_95'][1]:.3f}], workers "
              f"{workers['ratio_at_equal_rate']:.3f} [{workers['ratio_at_equal_rate_95'][0]:.3f}, "
              f"{workers['ratio_at_equal_rate_95'][1]:.3f}]", flush=True)
        print("    by process, sealed - clear (median of pairs), µs: " + ", ".join(
            f"{g} {v['difference_us_median']:+.1f}" for g, v in row.get("by_process", {}).items()), flush=True)


@contextlib.asynccontextmanager
async def _service(args: argparse.Namespace, side: str, data_dir: str):  # type: ignore[no-untyped-def]
    """One side's ``lrs serve`` (bench/ingest.py's ``bench_target``), sealing as ``side`` says."""
    Path(data_dir).mkdir(parents=True, exist_ok=True)
    target = types.SimpleNamespace(start_service=True, service_tree=args.service_tree, data_dir=data_dir,
                                   log_level=args.log_level)
    before = os.environ.get("LRS_SEAL_PERSONAL_DATA")
    os.environ["LRS_SEAL_PERSONAL_DATA"] = SIDES[side]  # read by the service when it starts, copied then
    try:
        async with bench_target(target) as (url, key, secret):
            _restore(before)
            auth = "Basic " + base64.b64encode(f"{key}:{secret}".encode()).decode()
            yield url, auth, ServiceCpu(target.service_pid, ended=True)
    finally:
        _restore(before)


def _restore(value: str | None) -> None:
    if value is None:
        os.environ.pop("LRS_SEAL_PERSONAL_DATA", None)
    else:
        os.environ["LRS_SEAL_PERSONAL_DATA"] = value


async def main_async(args: argparse.Namespace) -> int:
    os.environ.setdefault("LRS_HTTP_WORKERS", "2")
    os.environ.setdefault("LRS_PROJECTIONS_ENABLED", "false")
    load_before = load_average()
    # The two services' data (GBs after a long run), removed at the end.
    root = Path(tempfile.mkdtemp(prefix="seal-ratio-", dir=args.data_dir))
    try:
        return await _measure(args, root, load_before)
    finally:
        shutil.rmtree(root, ignore_errors=True)


async def _measure(args: argparse.Namespace, root: Path, load_before: list[float]) -> int:
    runs: list[dict] = []
    warmed: dict[str, dict] = {}
    async with contextlib.AsyncExitStack() as stack:
        services = {}
        for side in SIDES:
            services[side] = await stack.enter_async_context(_service(args, side, str(root / side)))
        # Per side: one learner population (the same seed: the same draws) and
        # bodies that go on from run to run.
        population = {side: Learners(args.learners, 0.0, args.seed) for side in SIDES}
        bodies: dict[tuple[str, str, int], _Bodies] = {}
        if "programme" in args.modes and args.warm_passes:
            for side, (url, auth, _) in services.items():
                warmed[side] = await warm_learners(url, auth, population[side], args.warm_passes,
                                                   max(args.concurrency))
                print(f"{side}: warmed, {warmed[side]}", flush=True)
        for round_ in range(args.rounds):
            order = list(SIDES) if round_ % 2 == 0 else list(reversed(SIDES))
            for mode in args.modes:
                for index, batch in enumerate(args.batch_sizes):
                    concurrency = args.concurrency[index] if len(args.concurrency) > 1 else args.concurrency[0]
                    for side in order:
                        url, auth, cpu = services[side]
                        learners = population[side] if mode == "programme" else None
                        made = bodies.setdefault((side, mode, batch), _Bodies(
                            batch, math.ceil(TEMPLATE_STATEMENTS / batch), learners))
                        result = await run_one(url, auth, batch, concurrency, args.duration, args.warmup, cpu,
                                               None, learners, made)
                        result.update(round=round_, side=side, mode=mode)
                        runs.append(result)
                        used = result["service_cpu_us_per_statement"] or {}
                        print(f"round {round_ + 1:>2} {mode:<9} batch={batch:<3} {side:<6} "
                              f"{result['statements_per_s']:>8,.0f}/s  CPU µs/statement all {used.get('all')} "
                              f"workers {used.get('http workers')}  errors {result['errors'] or 0}  "
                              f"load {result['load_average_after'][0]}", flush=True)
    summary = summarise(runs, args.resamples)
    print_summary(summary)
    if not args.no_write:
        record = {
            "benchmark": "seal_ratio",
            "machine": machine(args.service_tree, load_before=load_before),
            "service_tree": args.service_tree or "this checkout",
            "note": args.note,
            "settings": {k: v for k, v in vars(args).items() if k not in ("no_write", "note", "label")},
            "environment": {k: os.environ.get(k) for k in ("LRS_HTTP_WORKERS", "LRS_PROJECTIONS_ENABLED")},
            "warm_up": warmed,
            "summary": summary,
            "runs": runs,
        }
        write_result(record, "seal_ratio", args.label)
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    ints = lambda s: [int(x) for x in s.split(",")]  # noqa: E731
    parser.add_argument("--rounds", type=int, default=12, help="alternated pairs of each mode and batch (default 12)")
    parser.add_argument("--duration", type=float, default=4.0, help="measured seconds a run (default 4)")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds before each run (default 1)")
    parser.add_argument("--batch-sizes", type=ints, default=[100, 1])
    parser.add_argument("--concurrency", type=ints, default=[16, 32], help="one, or one per batch size")
    parser.add_argument("--modes", type=lambda s: s.split(","), default=list(MODES),
                        help="programme, worst or both (default)")
    parser.add_argument("--learners", type=int, default=50_000, help="the programme's learners (default 50,000)")
    parser.add_argument("--warm-passes", type=int, default=4, help="the programme's warm-up passes (default 4)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--resamples", type=int, default=4000, help="bootstrap draws (default 4,000)")
    parser.add_argument("--service-tree", metavar="CHECKOUT", help="run that checkout's `lrs serve` (its .venv)")
    parser.add_argument("--data-dir", help="a directory for the two services' data (a new one inside it, removed at the end; default: the temp dir)")
    parser.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    parser.add_argument("--summarise", nargs="+", metavar="RESULT",
                        help="summarise these results' runs again (and rewrite them), running nothing")
    add_result_options(parser)
    args = parser.parse_args(argv)
    if not set(args.modes) <= set(MODES) or args.rounds < 2:
        parser.error("--modes: programme and/or worst; --rounds at least 2")
    if len(args.concurrency) > 1 and len(args.concurrency) != len(args.batch_sizes):
        parser.error("give one --concurrency value, or one per batch size")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.summarise:
        for path in args.summarise:  # a result written before: its runs summarised again
            record = json.loads(Path(path).read_text())
            record["summary"] = summarise(record["runs"], args.resamples)
            print_summary(record["summary"])
            if not args.no_write:
                Path(path).write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        return 0
    return run_stoppable(main_async(args), "seal_ratio")


if __name__ == "__main__":
    sys.exit(main())
