"""Compare two profiles of ``bench/seal_gap_profile.py`` frame by frame.

Each profile directory holds py-spy raw stacks of the HTTP workers
(``worker*.txt``) and the ingest result (``ingest.json``).  A frame's share
of the workers' samples times the run's HTTP-worker CPU a statement is its
µs a statement; this prints, for the functions whose inclusive (or self)
µs differ most between the two, both figures and the difference.

    .venv/bin/python bench/seal_gap_frames.py SEALED_DIR CLEAR_DIR [--top 40] [--self]
    .venv/bin/python bench/seal_gap_frames.py DIR --only      # one profile's heaviest frames
    .venv/bin/python bench/seal_gap_frames.py DIR --under "KeySealing.seal_statements"   # a frame's callees

``--group`` sums frames by a named set of buckets (``BUCKETS`` below) that
do not overlap: the innermost matching bucket of each sample wins.
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from pathlib import Path

_LINE = re.compile(r" \(([^()]*):\d+\)$")

# (bucket, substring of a frame) in priority order from innermost: a sample
# is charged to the first bucket any of its frames (searched from the leaf)
# matches.
BUCKETS = [
    ("collector (native frames only)", ("gc_collect_main", "collect_main", "deduce_unreachable", "move_unreachable")),
    ("sealing (seal_statements)", ("seal_statements (",)),
    ("stored JSON (payload_parts)", ("payload_parts (",)),
    ("zstd (store_payloads)", ("store_payloads (",)),
    ("event hash (hash_with_text)", ("hash_with_text (",)),
    ("key statements (learner keys)", ("_load_or_create (", "_load (", "keys_for_writing (", "group_keys.py")),
    ("key announcements (listener)", ("LearnerKeys.heard (", "listener.py")),
    ("validation (parse_statements)", ("parse_statements (",)),
    ("prepare (prepare_statements)", ("prepare_statements (",)),
    ("forms and filter keys (statement_form)", ("statement_form (",)),
    ("plan_group, the rest", ("plan_group (",)),
    ("group columns, the rest", ("group_columns (", "group_definition_updates (")),
    ("asyncpg (execute, encode, decode)", ("asyncpg/",)),
    ("aiohttp", ("aiohttp/",)),
]


def _frames(line: str) -> tuple[list[str], int]:
    stack, _, count = line.rpartition(" ")
    return stack.split(";"), int(count)


# Samples of a thread waiting, not running: a pool thread waiting for work
# (py-spy --native counts them) and the event loop's poll.
_IDLE = ("PyThread_acquire_lock_timed", "epoll_pwait", "epoll_wait")


def _idle(frames: list[str]) -> bool:
    return any(frame.startswith(_IDLE) for frame in frames[-3:])


def _name(frame: str) -> str:
    return _LINE.sub(lambda m: f" ({m.group(1).rsplit('/', 1)[-1]})", frame)


def load(directory: Path) -> tuple[list[tuple[list[str], int]], float, dict]:
    stacks = []
    for path in sorted(directory.glob("worker*.txt")):
        for line in path.read_text(errors="replace").splitlines():
            if line.strip():
                frames, count = _frames(line)
                if not _idle(frames):
                    stacks.append((frames, count))
    result = json.loads((directory / "ingest.json").read_text())
    run = result["runs"][0]
    cpu = run["service_cpu_us_per_statement"]
    return stacks, cpu["http workers"], run


def inclusive(stacks) -> tuple[Counter, Counter, int]:
    total = 0
    incl: Counter = Counter()
    self_: Counter = Counter()
    for frames, count in stacks:
        total += count
        for name in {_name(f) for f in frames}:
            incl[name] += count
        self_[_name(frames[-1])] += count
    return incl, self_, total


def buckets(stacks) -> tuple[Counter, int]:
    out: Counter = Counter()
    total = 0
    for frames, count in stacks:
        total += count
        for frame in reversed(frames):
            hit = next((name for name, needles in BUCKETS if any(n in frame for n in needles)), None)
            if hit:
                out[hit] += count
                break
        else:
            out["other"] += count
    return out, total


def collector(directory: Path) -> dict:
    """From gc-start.json and gc-end.json (``seal_gap_profile.py --gc-stats``):
    per service process, the CPU seconds and the collector's seconds (by
    generation) in between, and the collector's µs a statement (its share of
    the process's CPU times the run's CPU a statement of its group)."""
    start = json.loads((directory / "gc-start.json").read_text())
    end = json.loads((directory / "gc-end.json").read_text())
    run = json.loads((directory / "ingest.json").read_text())["runs"][0]
    per_statement = run["service_cpu_us_per_statement"]
    rows = {}
    for pid, last in end.items():
        first = start.get(pid)
        argv = " ".join(last["argv"])
        if first is None or "ingest.py" in argv:
            continue
        cpu = last["cpu_s"] - first["cpu_s"]
        if cpu < 0.05:
            continue
        gc_s = [b - a for a, b in zip(first["gc_s"], last["gc_s"])]
        collections = [b - a for a, b in zip(first["collections"], last["collections"])]
        group = "relay" if "relay" in argv else "http workers"
        share = sum(gc_s) / cpu
        rows[pid] = {"process": group, "cpu_s": round(cpu, 2), "gc_s_by_generation": [round(g, 3) for g in gc_s],
                     "collections_by_generation": collections, "gc_share": round(share, 4)}
    workers = [r for r in rows.values() if r["process"] == "http workers"]
    total_cpu = sum(r["cpu_s"] for r in workers)
    total_gc = sum(sum(r["gc_s_by_generation"]) for r in workers)
    by_generation = [sum(r["gc_s_by_generation"][g] for r in workers) for g in range(3)]
    us = per_statement.get("http workers", 0.0)
    return {"processes": rows, "workers_gc_share": round(total_gc / total_cpu, 4) if total_cpu else None,
            "workers_gc_us_per_statement": round(total_gc / total_cpu * us, 2) if total_cpu else None,
            "workers_gc_us_per_statement_by_generation":
                [round(g / total_cpu * us, 2) for g in by_generation] if total_cpu else None,
            "workers_us_per_statement": us}


def callees(stacks, us: float, root: str, depth: int) -> list[tuple[int, float, str]]:
    """The frames under the first frame containing ``root`` of each sample,
    ``depth`` levels down, as (level, inclusive µs a statement, name) in
    tree order; branches under 0.1 µs left out."""
    total = sum(c for _, c in stacks)
    paths: Counter = Counter()
    for frames, count in stacks:
        names = [_name(f) for f in frames]
        at = next((i for i, n in enumerate(names) if root in n), None)
        if at is None:
            continue
        path = tuple(names[at:at + depth + 1])
        for k in range(1, len(path) + 1):
            paths[path[:k]] += count
    out: list[tuple[int, float, str]] = []

    def walk(prefix: tuple, level: int) -> None:
        kids = [(p, c) for p, c in paths.items() if len(p) == len(prefix) + 1 and p[:len(prefix)] == prefix]
        for path, count in sorted(kids, key=lambda kid: -kid[1]):
            if count / total * us >= 0.1:
                out.append((level, count / total * us, path[-1]))
                walk(path, level + 1)

    walk((), 0)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("first", type=Path)
    parser.add_argument("second", type=Path, nargs="?")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--self", action="store_true", help="compare self (leaf) time, not inclusive")
    parser.add_argument("--only", action="store_true")
    parser.add_argument("--group", action="store_true", help="sum by BUCKETS")
    parser.add_argument("--match", default=None, help="only frames containing this text")
    parser.add_argument("--gc", action="store_true", help="the collector's time (profiles run with --gc-stats)")
    parser.add_argument("--under", default=None, metavar="FRAME",
                        help="the first profile's frames under the one containing FRAME, as a tree (--depth levels)")
    parser.add_argument("--depth", type=int, default=6)
    args = parser.parse_args()
    if args.under:
        stacks, us, _ = load(args.first)
        for level, value, name in callees(stacks, us, args.under, args.depth):
            print(f"{'  ' * level}{value:6.2f}  {name}")
        return 0
    if args.gc:
        for d in [args.first] + ([args.second] if args.second else []):
            print(d, json.dumps(collector(d), indent=1))
        return 0
    sides = [args.first] + ([args.second] if args.second else [])
    loaded = [load(d) for d in sides]
    for d, (stacks, us, run) in zip(sides, loaded):
        cpu = {k: v for k, v in run["service_cpu_us_per_statement"].items() if not k.endswith(" system")}
        print(f"{d}: {sum(c for _, c in stacks):,} samples, workers {us:.1f} µs/statement, "
              f"{run['statements_per_s']:,.0f} statements/s, load {run.get('load_average_after')}, CPU {cpu}")
    if args.group:
        counted = [buckets(s) for s, _, _ in loaded]
        names = sorted({n for c, _ in counted for n in c}, key=lambda n: -counted[0][0][n])
        print(f"{'bucket':<40}" + "".join(f"{d.name:>14}" for d in sides) + ("      diff" if len(sides) == 2 else ""))
        for n in names:
            vals = [c[n] / t * us for (c, t), (_, us, _) in zip(counted, loaded)]
            print(f"{n:<40}" + "".join(f"{v:>14.1f}" for v in vals) + (f"{vals[0] - vals[1]:>+10.1f}" if len(vals) == 2 else ""))
        return 0
    counted = [inclusive(s) for s, _, _ in loaded]
    pick = 1 if args.self else 0
    per = [{n: c / t * us for n, c in parts[pick].items()} for parts, (_, _, t), (_, us, _) in
           zip(counted, [(None, None, c[2]) for c in counted], loaded)]
    names = set().union(*per)
    if args.match:
        names = {n for n in names if args.match in n}
    if len(per) == 2:
        order = sorted(names, key=lambda n: -abs(per[0].get(n, 0) - per[1].get(n, 0)))
    else:
        order = sorted(names, key=lambda n: -per[0][n])
    for n in order[: args.top]:
        vals = [p.get(n, 0.0) for p in per]
        print("".join(f"{v:8.1f}" for v in vals) + (f"{vals[0] - vals[1]:+8.1f}" if len(vals) == 2 else "") + f"  {n[:150]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
