"""Sealed against clear ingest of two builds, alternated, in a running
programme's steady state: ``bench/ingest.py --start-service`` for each run
(2 HTTP workers, projections off), 50,000 learners each named alike four
times first (``--learners 50000 --warm-passes 4``), batch 100 (16 clients)
and batch 1 (32 clients).  Each round runs before-sealed, before-clear,
after-sealed, after-clear (the next round in the reverse order), and the
summary gives each round's sealed/clear of each build in CPU µs per
statement of every process of the service and in statements/s.

    python bench/seal_form_ab.py --before /work/wt/base --rounds 2 --name seal-form
    python bench/seal_form_ab.py --before /work/wt/base --rounds 1 --batch-sizes 100 --warm-passes 8

Results: ``bench/results/ingest-<name>-<stamp>-<build>-<sealed|clear>-r<round>.json``
(one per run) and ``...-<stamp>-summary.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
RESULTS = HERE / "bench" / "results"


def run(tree: str, sealed: bool, output: Path, args: argparse.Namespace, note: str) -> dict:
    env = {**os.environ, "LRS_SEAL_PERSONAL_DATA": "true" if sealed else "false", "LRS_HTTP_WORKERS": "2",
           "LRS_PROJECTIONS_ENABLED": "false"}
    command = [sys.executable, str(HERE / "bench" / "ingest.py"), "--start-service", "--service-tree", tree,
               "--batch-sizes", args.batch_sizes,
               "--concurrency", ",".join("16" if b == "100" else "32" for b in args.batch_sizes.split(",")), "--duration", str(args.duration),
               "--learners", "50000", "--warm-passes", str(args.warm_passes), "--note", note, "--output", str(output)]
    subprocess.run(command, env=env, check=True, cwd=HERE)
    return json.loads(output.read_text())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="the before checkout (with its own .venv)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--name", default="seal-form", help="result files' name (the branch)")
    parser.add_argument("--batch-sizes", default="100,1", help="as bench/ingest.py's (default 100,1)")
    parser.add_argument("--warm-passes", type=int, default=4,
                        help="times each learner is named before the runs (default 4: each of two workers has "
                             "then not seen about one in sixteen)")
    args = parser.parse_args()
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    trees = {"before": args.before, "after": str(HERE)}
    order = [("before", True), ("before", False), ("after", True), ("after", False)]
    cells: dict = {}
    for round_ in range(1, args.rounds + 1):
        for build, sealed in (order if round_ % 2 else order[::-1]):
            kind = "sealed" if sealed else "clear"
            output = RESULTS / f"ingest-{args.name}-{stamp}-{build}-{kind}-r{round_}.json"
            print(f"== round {round_} {build} {kind} (load {os.getloadavg()})", flush=True)
            record = run(trees[build], sealed, output, args, f"{args.name} A/B: {build} {kind} round {round_}")
            for one in record["runs"]:
                cpu = one["service_cpu_us_per_statement"]
                cells.setdefault(str(one["batch_size"]), {}).setdefault(build, {}).setdefault(kind, {})[round_] = {
                    "cpu_us_all": cpu["all"],
                    "cpu_us_by_process": {k: v for k, v in cpu.items() if k != "all" and not k.endswith(" system")},
                    "statements_per_s": one["statements_per_s"],
                    "p99_ms": one["latency_ms"]["p99"],
                    "first_sight_share": one["learners"].get("first_sight_share"),
                    "load_average_after": one["load_average_after"],
                }
    ratios: dict = {}
    for batch, builds in cells.items():
        for build, kinds in builds.items():
            for round_, sealed in kinds.get("sealed", {}).items():
                clear = kinds.get("clear", {}).get(round_)
                if clear:
                    ratios.setdefault(batch, {}).setdefault(build, {})[round_] = {
                        "sealed_over_clear_cpu": round(sealed["cpu_us_all"] / clear["cpu_us_all"], 3),
                        "sealed_over_clear_statements_per_s": round(
                            sealed["statements_per_s"] / clear["statements_per_s"], 3),
                    }
    summary = {"benchmark": "seal_form_ab", "stamp": stamp, "trees": trees, "rounds": args.rounds,
               "command": " ".join(sys.argv), "cells": cells, "sealed_over_clear": ratios}
    path = RESULTS / f"ingest-{args.name}-{stamp}-summary.json"
    path.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(ratios, indent=1))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
