"""Batch-100 ingest with each piece that has a setting turned off, alternated.

Runs ``bench/ingest.py --start-service`` once per variant per round, in
rotating order, and writes every figure and the medians to
``bench/results/ingest-toggles-<time>.json``.  Variants (their settings):

* ``all on``: the defaults;
* ``no anchors``: ``LRS_ANCHOR_EVERY_EVENTS=0 LRS_ANCHOR_EVERY_S=0``;
* ``no relay``: ``LRS_RELAY_ENABLED=false`` (no NATS publishing, no anchors);
* ``no rate limit``: ``LRS_RATE_LIMIT_PER_S=0``;
* ``no shedding``: ``LRS_SHED_QUEUE_STATEMENTS=0 LRS_SHED_LOOP_LAG_MS=0 LRS_SHED_LATENCY_MS=0``.

The IRI grammar and write-time Activity Definitions have no setting: see
``bench/ingest_attribution.py`` and ``bench/store_writer.py --defines``.

    python bench/ingest_toggles.py --rounds 2 --duration 15
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
from run_record import load_average, write_result  # noqa: E402
VARIANTS = {
    "all on": {},
    "no anchors": {"LRS_ANCHOR_EVERY_EVENTS": "0", "LRS_ANCHOR_EVERY_S": "0"},
    "no relay": {"LRS_RELAY_ENABLED": "false"},
    "no rate limit": {"LRS_RATE_LIMIT_PER_S": "0"},
    "no shedding": {"LRS_SHED_QUEUE_STATEMENTS": "0", "LRS_SHED_LOOP_LAG_MS": "0", "LRS_SHED_LATENCY_MS": "0"},
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--duration", type=float, default=15)
    parser.add_argument("--workers", default="2", help="LRS_HTTP_WORKERS (default 2, as ingest-ab-20261206)")
    args = parser.parse_args()
    names = list(VARIANTS)
    runs = []
    for round_ in range(args.rounds):
        order = names[round_ % len(names):] + names[:round_ % len(names)]
        for name in order:
            with tempfile.TemporaryDirectory() as scratch:
                out = Path(scratch) / "result.json"
                env = {**os.environ, "LRS_HTTP_WORKERS": args.workers, "LRS_PROJECTIONS_ENABLED": "false",
                       **VARIANTS[name]}
                load_before = load_average()[0]
                done = subprocess.run(
                    [sys.executable, str(BENCH / "ingest.py"), "--start-service", "--batch-sizes", "100",
                     "--concurrency", "16", "--duration", str(args.duration), "--output", str(out)],
                    env=env, stdout=subprocess.DEVNULL,
                )
                result = json.loads(out.read_text()) if done.returncode == 0 and out.exists() else None
            if result is None:  # on a busy machine the service may not start within ingest.py's 120 s
                runs.append({"variant": name, "round": round_ + 1, "error": f"ingest.py exited {done.returncode}",
                             "load_average_before": round(load_before, 1)})
                print(f"round {round_ + 1} {name:14s} failed (load {load_before:.1f})", flush=True)
                continue
            rate = result["runs"][0]["statements_per_s"]
            runs.append({"variant": name, "round": round_ + 1, "statements_per_s": rate,
                         "p99_ms": result["runs"][0]["latency_ms"]["p99"],
                         "load_average_before": round(load_before, 1), "load_average_after": round(load_average()[0], 1)})
            print(f"round {round_ + 1} {name:14s} {rate:8.0f} statements/s  (load {load_before:.1f})", flush=True)
    medians = {name: statistics.median(rates) for name in names
               if (rates := [r["statements_per_s"] for r in runs if r["variant"] == name and "error" not in r])}
    record = {
        "benchmark": "ingest-toggles",
        "recorded_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": f"python bench/ingest_toggles.py --rounds {args.rounds} --duration {args.duration} "
                   f"--workers {args.workers}",
        "settings": {name: VARIANTS[name] for name in names},
        "runs": runs,
        "median_statements_per_s": medians,
    }
    print(json.dumps(medians, indent=1))
    write_result(record, "ingest-toggles", indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
