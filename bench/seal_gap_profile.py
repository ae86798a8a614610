"""Profile the HTTP workers (and the relay) of a whole-service ingest run.

Runs ``bench/ingest.py --start-service`` with the given arguments, waits for
its warm-up to end, then records every HTTP worker (and the relay) with
py-spy for ``--seconds`` during the measured run, as raw collapsed stacks
(one file a process) beside the ingest result.  ``bench/seal_gap_frames.py``
compares two such profiles frame by frame.

    LRS_HTTP_WORKERS=2 LRS_PROJECTIONS_ENABLED=false [LRS_SEAL_PERSONAL_DATA=false] \\
      .venv/bin/python bench/seal_gap_profile.py --out DIR [--service-tree TREE] -- \\
      --batch-sizes 100 --concurrency 16 --duration 20 --learners 50000 --warm-passes 4

py-spy is not a project dependency: it is run as ``uvx py-spy`` unless
``--py-spy`` names a binary.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from process_cpu import _children  # noqa: E402

HERE = Path(__file__).resolve().parent


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def _descendants(root: int) -> list[int]:
    children = _children()
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        for child in children.get(pid, []):
            found.append(child)
            todo.append(child)
    return found


def _service_processes(bench_pid: int) -> dict[str, int]:
    """The HTTP workers (``lrs serve`` with no ``lrs serve`` child) and the relay."""
    named: dict[str, int] = {}
    serves = [pid for pid in _descendants(bench_pid) if "serve" in _cmdline(pid) and "lrs" in " ".join(_cmdline(pid))]
    relays = [pid for pid in _descendants(bench_pid) if "relay" in _cmdline(pid)]
    workers = [pid for pid in serves if not any(child in serves for child in _descendants(pid))]
    for index, pid in enumerate(sorted(workers)):
        named[f"worker{index}"] = pid
    for index, pid in enumerate(sorted(relays)):
        named[f"relay{index}"] = pid
    return named


def _snapshot(gc_dir: Path, to: Path) -> None:
    records = {}
    for path in gc_dir.glob("*.json"):
        try:
            records[path.stem] = json.loads(path.read_text())
        except (OSError, ValueError):
            pass
    to.write_text(json.dumps(records, indent=1) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="directory for the profiles and the ingest result")
    parser.add_argument("--service-tree", help="passed to ingest.py")
    parser.add_argument("--seconds", type=float, default=15.0, help="py-spy recording seconds")
    parser.add_argument("--delay", type=float, default=4.0, help="seconds after the warm-up before recording")
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--py-spy", default=None, help="py-spy binary (default: uvx py-spy)")
    parser.add_argument("--native", action="store_true",
                        help="py-spy --native (C frames, the collector; stops the process at each sample, "
                             "which slows a batch-100 run some fivefold); default --nonblocking")
    parser.add_argument("--perf-postgres", action="store_true",
                        help="also `perf record -g` PostgreSQL's processes for the same seconds (perf.data in --out)")
    parser.add_argument("--no-spy", action="store_true", help="record no py-spy profile (with --gc-stats: the collector only)")
    parser.add_argument("--gc-stats", action="store_true",
                        help="time the collector in every process (bench/gc_stats/sitecustomize.py): "
                             "gc-start.json at the warm-up's end, gc-end.json after the measured run")
    parser.add_argument("ingest_args", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    extra = [a for a in args.ingest_args if a != "--"]
    command = [sys.executable, str(HERE / "ingest.py"), "--start-service", "--output", str(out / "ingest.json"), *extra]
    if args.service_tree:
        command += ["--service-tree", args.service_tree]
    spy = [args.py_spy] if args.py_spy else ["uvx", "-q", "py-spy"]
    env = dict(os.environ)
    gc_dir = out / "gc"
    if args.gc_stats:
        gc_dir.mkdir(exist_ok=True)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE / "gc_stats"), env.get("PYTHONPATH")]))
        env["LRS_BENCH_GC_STATS"] = str(gc_dir)
    bench = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)
    recorders = []
    assert bench.stdout is not None
    for line in bench.stdout:
        sys.stdout.write(line)
        sys.stdout.flush()
        if args.gc_stats and line.startswith("batch="):
            _snapshot(gc_dir, out / "gc-end.json")
        if line.startswith("warm-up:") or (not recorders and "--warm-passes" not in extra and line.startswith("batch=")):
            time.sleep(args.delay)
            if args.gc_stats:
                _snapshot(gc_dir, out / "gc-start.json")
            processes = _service_processes(bench.pid)
            (out / "processes.json").write_text(json.dumps(processes, indent=2) + "\n")
            for name, pid in processes.items():
                if args.no_spy:
                    break
                recorders.append(subprocess.Popen(
                    [*spy, "record", "--native" if args.native else "--nonblocking", "--rate", str(args.rate), "--duration", str(int(args.seconds)),
                     "-p", str(pid), "-o", str(out / f"{name}.txt"), "--format", "raw"],
                    stdout=subprocess.DEVNULL, stderr=open(out / f"{name}.spy.log", "w")))
            if args.perf_postgres:
                postgres = [pid for pid in _descendants(bench.pid) if "postgres" in _cmdline(pid)[0]]
                recorders.append(subprocess.Popen(
                    ["perf", "record", "-g", "-o", str(out / "postgres.perf.data"), "-p", ",".join(map(str, postgres)),
                     "--", "sleep", str(args.seconds)],
                    stdout=subprocess.DEVNULL, stderr=open(out / "postgres.perf.log", "w")))
    for recorder in recorders:
        recorder.wait()
    return bench.wait()


if __name__ == "__main__":
    sys.exit(main())
