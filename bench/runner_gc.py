"""The collector's share of a running ``lrs project`` in a lag run, and the run's figures.

After ``bench/projection.py --lag-only`` ran with ``bench/runner_gc_site`` on
PYTHONPATH (see its sitecustomize.py), give the run's JSON (what
projection.py printed or wrote) and the runner's collection totals: prints
the lag, the CPU µs an event of the projection, PostgreSQL and the HTTP
workers, and the collections made while the load was applied (from the
snapshot at which the projection's CPU of the run began: its CPU at the end
less the run's projection µs times the statements stored), as counts and µs
an event by generation.

    D=/work/benchdata/lag3
    PYTHONPATH=bench/runner_gc_site RUNNER_GC_DIR=$D/gc RUNNER_GC_LABEL=base-b1 .venv/bin/python bench/projection.py \\
        --rate 1200 --batch 50 --evidence-share 1.0 --workers 2 --duration 40 --lag-only \\
        --service-tree /work/wt/base --label base-b1 --work-dir $D/lag > $D/base-b1.json
    .venv/bin/python bench/runner_gc.py $D/base-b1.json $D/gc/base-b1-*.json
"""

from __future__ import annotations

import json
import sys


def summary(run_path: str, gc_path: str) -> dict:
    text = open(run_path).read()
    run = json.JSONDecoder().raw_decode(text[text.index("{\n"):])[0]
    stats = json.load(open(gc_path))
    stored = run["statements_stored"]
    cpu = run["cpu_us_per_statement"]
    out = {"label": run["settings"]["label"], "achieved_per_s": run["ingest"]["achieved_statements_per_s"],
           "lag_p99_s": round(run["lag_s"]["p99"], 2), "projection_us": cpu["projection"],
           "postgresql_us": cpu["postgresql"], "http_workers_us": cpu["http workers"], "stored": stored,
           "load": [run["machine"]["loadavg_before"][0], run["machine"]["loadavg_after_ingest"][0]],
           "events_per_batch": run.get("events_per_batch")}
    history = stats.get("history")
    if not history:  # totals only (an earlier version of the site file): the whole process's
        out["collector_us_per_event_whole_process"] = round(sum(v[1] for v in stats["gens"].values()) / stored * 1e6, 2)
        return out
    began = history[-1][1] - cpu["projection"] * stored / 1e6
    at = next((i for i, h in enumerate(history) if h[1] >= began), 0)
    before = history[max(0, at - 1)][2]
    made = [[end[0] - start[0], end[1] - start[1]] for end, start in zip(history[-1][2], before)]
    out["collections_during_load"] = [m[0] for m in made]
    out["collector_us_per_event"] = [round(m[1] / stored * 1e6, 2) for m in made]
    out["collector_us_per_event_all"] = round(sum(m[1] for m in made) / stored * 1e6, 2)
    return out


if __name__ == "__main__":
    print(json.dumps(summary(sys.argv[1], sys.argv[2])))
