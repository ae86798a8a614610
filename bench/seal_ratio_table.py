"""One table of several ``bench/seal_ratio.py`` results, in the order given
(alternate the builds: base, branch, base, branch...): per result, mode and
batch, the sealed/clear ratio of every process (median of the pairs, with
its bootstrap 95% interval), the ratio at equal statements/s, the median
sealed-minus-clear µs a statement of every process, the HTTP workers and
PostgreSQL, and the load average range over the runs.

    python bench/seal_ratio_table.py bench/results/seal_ratio-A-*.json bench/results/seal_ratio-B-*.json \\
        [--json OUT] [--pooled]

``--pooled`` adds one row per mode and batch for all the given results'
pairs together (each result's rounds kept apart): for runs of one service
code, as the start's and a branch whose ``lrs/`` is the start's.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from seal_ratio import summarise  # noqa: E402


def pooled(paths: list[Path]) -> dict:
    """A result-like record of every run of ``paths`` (rounds numbered apart), summarised together."""
    runs = []
    for index, path in enumerate(paths):
        for run in json.loads(path.read_text())["runs"]:
            runs.append({**run, "round": index * 10_000 + run["round"]})
    return {"runs": runs, "summary": summarise(runs, 4000)}


def rows(path: Path, result: dict | None = None) -> list[dict]:
    result = result or json.loads(path.read_text())
    loads = [run["load_average_after"][0] for run in result["runs"] if run.get("load_average_after")]
    out = []
    for summary in result["summary"]:
        every, by_process = summary["all"], summary["by_process"]
        out.append({
            "result": path.name, "tree": result.get("service_tree") or "this checkout",
            "mode": summary["mode"], "batch": summary["batch"], "pairs": summary["pairs"],
            "ratio": every["ratio_median"], "ratio_95": every["ratio_95"],
            "at_equal_rate": every["ratio_at_equal_rate"], "at_equal_rate_95": every["ratio_at_equal_rate_95"],
            "extra_us": {name: by_process[name]["difference_us_median"]
                         for name in ("all", "http workers", "postgresql") if name in by_process},
            "load": [min(loads), max(loads)] if loads else None,
        })
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", type=Path)
    parser.add_argument("--json", type=Path, help="write the table's rows here too")
    parser.add_argument("--pooled", action="store_true", help="a row per mode and batch of all the results' pairs")
    args = parser.parse_args()
    table = [row for path in args.results for row in rows(path)]
    if args.pooled:
        table += rows(Path(f"all {len(args.results)} results"), pooled(args.results))
    print("| result | mode | batch | sealed/clear [95%] | at equal rates [95%] | extra µs all / workers / PostgreSQL | load |")
    print("|---|---|---|---|---|---|---|")
    for row in table:
        extra = row["extra_us"]
        load = "%.1f-%.1f" % tuple(row["load"]) if row["load"] else "?"
        print(f"| {row['result']} | {row['mode']} | {row['batch']} | {row['ratio']:.3f} [{row['ratio_95'][0]:.3f}, "
              f"{row['ratio_95'][1]:.3f}] | {row['at_equal_rate']:.3f} [{row['at_equal_rate_95'][0]:.3f}, "
              f"{row['at_equal_rate_95'][1]:.3f}] | {extra.get('all', 0):+.1f} / {extra.get('http workers', 0):+.1f} / "
              f"{extra.get('postgresql', 0):+.1f} | {load} |")
    if args.json:
        args.json.write_text(json.dumps(table, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
