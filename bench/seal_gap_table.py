"""One line per run of ``bench/seal_gap_profile.py --gc-stats``: CPU µs a
statement per process group, the collector's share of the HTTP workers
(µs a statement, young/middle collections per worker), statements/s and
load average; and with ``--json FILE`` all of it in one result file.

    .venv/bin/python bench/seal_gap_table.py DIR... [--json bench/results/seal-gap-....json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from seal_gap_frames import collector


def row(directory: Path) -> dict:
    result = json.loads((directory / "ingest.json").read_text())
    run = result["runs"][0]
    cpu = {k: v for k, v in run["service_cpu_us_per_statement"].items() if not k.endswith(" system")}
    out = {"run": directory.name, "note": result.get("note"), "sealing": result.get("sealing"),
           "cpu_us_per_statement": cpu, "statements_per_s": run["statements_per_s"],
           "latency_ms": run["latency_ms"], "group_commits": run.get("group_commits"),
           "keys_refused": run.get("keys_refused"), "load_average_after": run.get("load_average_after")}
    if (directory / "gc-end.json").exists():
        gc = collector(directory)
        out["collector"] = {
            "workers_us_per_statement": gc["workers_gc_us_per_statement"],
            "collections_per_worker": [p["collections_by_generation"][:2] for p in gc["processes"].values()
                                       if p["process"] == "http workers"],
        }
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dirs", nargs="+", type=Path)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows = [row(d) for d in args.dirs if (d / "ingest.json").exists()]
    print(f"{'run':<28}{'workers':>8}{'pg':>7}{'relay':>7}{'nats':>7}{'all':>8}{'gc':>7}  {'collections':<22}{'st/s':>7}  load")
    for r in rows:
        c = r["cpu_us_per_statement"]
        gc = r.get("collector", {})
        print(f"{r['run']:<28}{c.get('http workers', 0):>8.1f}{c.get('postgresql', 0):>7.1f}{c.get('relay', 0):>7.1f}"
              f"{c.get('nats-server', 0):>7.1f}{c.get('all', 0):>8.1f}{gc.get('workers_us_per_statement') or 0:>7.1f}  "
              f"{str(gc.get('collections_per_worker', '')):<22}{r['statements_per_s']:>7.0f}  {r['load_average_after']}")
    if args.json:
        args.json.write_text(json.dumps({"benchmark": "seal_gap", "runs": rows}, indent=1) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
