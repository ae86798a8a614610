"""A markdown table of bench/queries.py results against store size.

Each ``--size`` names a store size's timing result and its ``--buffers``
result (files of bench/results/); each filter gets, per size, the sequential
p50 / p99, the 16-client p50 / p99 (ms), the mean / p99 shared buffers a
page touches and the CPU ms of a sequential page (the bench and its
PostgreSQL backend), with a mark on every p99 over the issue-19 targets
(20 ms sequential, 50 ms at 16 clients).

    .venv/bin/python bench/queries_table.py \\
        --size 1M bench/results/queries-1000k-a.json bench/results/queries-1000k-a-buffers.json \\
        --size 3M bench/results/queries-3000k-b.json bench/results/queries-3000k-b-buffers.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

SEQUENTIAL_P99_MS = 20.0
CONCURRENT_P99_MS = 50.0


def _ms(value: float) -> str:
    return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"


def cell(timing: dict, buffers: dict | None) -> str:
    seq = timing["sequential"]
    conc = next(v for k, v in timing.items() if k.startswith("clients_"))
    marks = ("**" if seq["p99_ms"] > SEQUENTIAL_P99_MS else "", "**" if conc["p99_ms"] > CONCURRENT_P99_MS else "")
    text = (f"{_ms(seq['p50_ms'])} / {marks[0]}{_ms(seq['p99_ms'])}{marks[0]} ; "
            f"{_ms(conc['p50_ms'])} / {marks[1]}{_ms(conc['p99_ms'])}{marks[1]}")
    if buffers is not None:
        text += f" ; {buffers['buffers_mean']:,.0f} / {buffers['buffers_p99']:,}"
    if "client_cpu_ms" in seq:
        text += f" ; {seq['client_cpu_ms'] + seq['postgres_cpu_ms']:.1f}"
    return text


def table(sizes: list[tuple[str, dict, dict | None]]) -> str:
    names = list(sizes[0][1]["filters"])
    head = "| filter | " + " | ".join(label for label, _, _ in sizes) + " |"
    lines = [head, "|---" * (len(sizes) + 1) + "|"]
    for name in names:
        cells = [cell(t["filters"][name], (b or {}).get("buffers", {}).get(name)) if name in t["filters"] else "–"
                 for _, t, b in sizes]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    loads = "; ".join(f"{label}: load {t['machine']['loadavg_before'][0]}→{t['machine']['loadavg_after'][0]}"
                      for label, t, _ in sizes)
    return "\n".join(lines) + f"\n\n({loads})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", nargs="+", action="append", required=True, metavar="LABEL TIMING [BUFFERS]",
                        help="a column: its label, a timing result and optionally a --buffers result")
    args = parser.parse_args(argv)
    sizes = []
    for label, timing, *rest in args.size:
        sizes.append((label, json.loads(Path(timing).read_text()),
                      json.loads(Path(rest[0]).read_text()) if rest else None))
    print(table(sizes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
