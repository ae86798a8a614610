"""The table of a ``bench/seal_population_ab.sh`` run: per mode and batch
size, CPU µs per statement of every process of the service (and by
process), statements/s and load average, for each round's clear, sealed
before and sealed after, and sealed/clear of each round (the clear run is
the one next to it, so both saw about the same load).  Writes
``bench/results/ingest-<name>-<stamp>-summary.json`` (name: the A/B script's NAME,
default seal-cost).

    python bench/seal_population_summary.py 20261206T160022Z [NAME]
"""

from __future__ import annotations

import json
import re
import statistics
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
_NAME = re.compile(r"ingest-(?P<name>[\w-]+?)-(?P<stamp>\d{8}T\d{6}Z)-(?P<mode>\w+)-(?P<variant>(before|after)-(sealed|clear))-r(?P<round>\d+)\.json")


def collect(stamp: str, name: str = "seal-cost") -> dict:
    rows: dict = {}
    for path in sorted(RESULTS.glob(f"ingest-{name}-{stamp}-*-r*.json")):
        match = _NAME.fullmatch(path.name)
        if match is None or match["name"] != name:
            continue
        record = json.loads(path.read_text())
        for run in record["runs"]:
            cpu = run["service_cpu_us_per_statement"] or {}
            cell = rows.setdefault(match["mode"], {}).setdefault(str(run["batch_size"]), {}).setdefault(
                match["variant"], {})
            cell[match["round"]] = {
                "cpu_us_all": cpu.get("all"),
                "cpu_us_by_process": {k: v for k, v in cpu.items() if k != "all" and not k.endswith(" system")},
                "statements_per_s": run["statements_per_s"],
                "p99_ms": run["latency_ms"]["p99"],
                "transactions_per_statement": (run.get("group_commits") or {}).get("transactions_per_statement"),
                "first_sight_share": run.get("learners", {}).get("first_sight_share"),
                "load_average_after": run["load_average_after"],
                "errors": run["errors"],
            }
    return rows


def ratios(cells: dict) -> dict:
    out = {}
    for side in ("before", "after"):
        sealed, clear = cells.get(f"{side}-sealed", {}), cells.get("after-clear", {})
        per_round = [round(sealed[r]["cpu_us_all"] / clear[r]["cpu_us_all"], 3)
                     for r in sorted(sealed) if r in clear and sealed[r]["cpu_us_all"] and clear[r]["cpu_us_all"]]
        out[side] = {"sealed_over_clear_per_round": per_round,
                     "median": round(statistics.median(per_round), 3) if per_round else None}
    return out


def main(argv: list[str]) -> int:
    stamp = argv[1]
    name = argv[2] if len(argv) > 2 else "seal-cost"
    rows = collect(stamp, name)
    summary = {"benchmark": f"ingest {name} A/B", "stamp": stamp,
               "command": f"bench/seal_population_ab.sh <before checkout> <rounds> <duration>; "
                          f"python bench/seal_population_summary.py {stamp} {name}",
               "modes": {}}
    for mode, batches in rows.items():
        for batch, cells in batches.items():
            r = ratios(cells)
            summary["modes"].setdefault(mode, {})[batch] = {"runs": cells, "ratios": r}
            print(f"{mode:>11} batch {batch:>3}:", end="")
            for variant in ("after-clear", "before-sealed", "after-sealed"):
                runs = cells.get(variant, {})
                print(f"  {variant} " + " / ".join(f"{runs[k]['cpu_us_all']} µs {runs[k]['statements_per_s']:,.0f}/s"
                                                   f" {runs[k]['transactions_per_statement']} xact"
                                                   for k in sorted(runs)), end="")
            print(f"  sealed/clear before {r['before']['sealed_over_clear_per_round']}"
                  f" after {r['after']['sealed_over_clear_per_round']}")
    out = RESULTS / f"ingest-{name}-{stamp}-summary.json"
    out.write_text(json.dumps(summary, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
