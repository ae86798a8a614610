"""Whole-service cost of sealing personal data: ``lrs serve`` with
``LRS_SEAL_PERSONAL_DATA`` false and true, alternated, batch 100 and batch 1.

Each variant starts its own service (embedded PostgreSQL and nats-server,
as ``bench/ingest.py --start-service``) with ``LRS_HTTP_WORKERS=2`` and
``LRS_PROJECTIONS_ENABLED=false``, drives it with bench/ingest.py's client
and, besides statements/s, reports the CPU time per statement of every
process of the service: its workers, its relay, PostgreSQL and nats-server
(psutil; the load generator is not counted).  CPU per statement is the
figure to compare on a shared machine: other load slows both sides'
throughput but not their CPU per statement much.  Every statement names a
learner not seen before in the run for the first 50,000 (bench/ingest.py's
template), so the sealed side pays for making each learner's key.

    python bench/seal_ab.py --rounds 2 --duration 15

``--stable-names`` gives each learner one name (the template's ``Learner
<n>`` names every statement differently, so no two statements name a
learner alike); with ``--prepass 150000`` every worker has then seen every
learner as it is named in the measured runs: the steady state of a service
whose learners are known.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import statistics
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.ingest import RESULTS_DIR, Learners, _body, _Connection, bench_target, run_one, run_stoppable  # noqa: E402

VARIANTS = {"clear": "false", "sealed": "true"}


def use_stable_names() -> None:
    """bench/ingest.py's template with one name per learner (its mbox's number)."""
    import bench.ingest as ingest

    def statement(n: int, statement_id: str, registration: str) -> str:
        score = n % 100
        return ingest._TEMPLATE % (statement_id, n % 50_000, n % 50_000, n % 40, n % 21, n % 21, score, score,
                                   1 + n % 59, registration, n % 60)

    ingest._statement = statement


def service_processes(data_dir: str) -> list[psutil.Process]:
    """The service started by this process and everything it runs, plus the
    embedded PostgreSQL and nats-server (which detach) found by data dir."""
    found: dict[int, psutil.Process] = {}
    for child in psutil.Process().children(recursive=True):
        found[child.pid] = child
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if any(data_dir in part for part in proc.info["cmdline"] or ()):
                found[proc.pid] = proc
                for child in proc.children(recursive=True):
                    found[child.pid] = child
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return list(found.values())


def kind(proc: psutil.Process) -> str:
    """postgres, nats-server, or the lrs process's role (serve, worker, relay)."""
    try:
        cmdline = proc.cmdline()
        name = proc.name()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return "gone"
    if "postgres" in name:
        return "postgres"
    if "nats" in name:
        return "nats-server"
    role = next((part for part in cmdline if part in ("serve", "relay", "project")), "python")
    if role == "serve" and "LRS_WORKER_OF" in proc.environ():
        role = "worker"
    return role


def cpu_seconds(processes: list[psutil.Process]) -> dict[int, float]:
    out = {}
    for proc in processes:
        try:
            times = proc.cpu_times()
            out[proc.pid] = times.user + times.system
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return out


async def prepass(url: str, auth: str, total: int, concurrency: int) -> None:
    """``total`` statements of the bench's template from its first learner
    on (batch 100), as fast as the service takes them."""
    counter = [0]
    host, port = url.removeprefix("http://").rsplit(":", 1)

    async def client() -> None:
        conn = _Connection(host, int(port), "/xapi/statements", auth)
        while counter[0] < total:
            status = await conn.post(_body(100, counter))
            if status != 200:
                raise SystemExit(f"prepass: HTTP {status}")
        conn.close()

    await asyncio.gather(*(client() for _ in range(concurrency)))


async def measure(args: argparse.Namespace, seal: str, tree: str | None = None) -> list[dict]:
    os.environ.update({"LRS_SEAL_PERSONAL_DATA": seal, "LRS_HTTP_WORKERS": str(args.workers),
                       "LRS_PROJECTIONS_ENABLED": "false"})
    if tree is not None:
        os.chdir(args.trees[tree])  # `python -m lrs serve` runs the lrs package found there
    rows = []
    # bench_target makes its data dir under tempfile's directory: a fresh one
    # per service, so the embedded PostgreSQL and nats-server are found by it.
    tempfile.tempdir = tempfile.mkdtemp(prefix="seal-ab-", dir=args.scratch)
    async with bench_target(args) as (url, key, secret):
        auth = "Basic " + base64.b64encode(f"{key}:{secret}".encode()).decode()
        [data_dir] = Path(tempfile.tempdir).iterdir()
        if args.prepass:
            # Every learner of the bench's template seen once (keys made),
            # so what is measured is learners already known.
            await prepass(url, auth, args.prepass, args.concurrency)
        for batch in args.batch_sizes:
            # --stable-names: the measured runs name the template's 50,000 learners as the
            # prepass did (bench/ingest.py's bodies put a new name in every statement otherwise).
            learners = Learners(50_000) if args.stable_names else None
            await run_one(url, auth, batch, args.concurrency, args.warmup, 0, learners=learners)  # not measured
            processes = service_processes(str(data_dir))
            load_before = os.getloadavg()
            before = cpu_seconds(processes)
            result = await run_one(url, auth, batch, args.concurrency, args.duration, 0, learners=learners)
            after = cpu_seconds(processes)
            cpu = sum(after[pid] - before[pid] for pid in after if pid in before)
            by_kind: dict[str, float] = {}
            for proc in processes:
                if proc.pid in after and proc.pid in before:
                    by_kind[kind(proc)] = by_kind.get(kind(proc), 0.0) + after[proc.pid] - before[proc.pid]
            result.update(
                variant=("sealed" if seal == "true" else "clear") + (f" {tree}" if tree else ""),
                learners_known_before=bool(args.prepass),
                service_processes=len(processes),
                service_cpu_s=round(cpu, 3),
                cpu_us_per_statement=round(cpu / result["statements"] * 1e6, 1) if result["statements"] else None,
                cpu_us_per_statement_by_process={
                    k: round(v / result["statements"] * 1e6, 1) for k, v in sorted(by_kind.items())
                } if result["statements"] else None,
                load_average_before=[round(x, 2) for x in load_before],
                load_average_after=[round(x, 2) for x in os.getloadavg()],
            )
            print(f"{result['variant']:>6} batch={batch:>3} {result['statements_per_s']:>8,.0f} statements/s "
                  f"p50={result['latency_ms']['p50']:.1f} ms  cpu={result['cpu_us_per_statement']} µs/statement "
                  f"load={result['load_average_before'][0]} {result['cpu_us_per_statement_by_process']}", flush=True)
            rows.append(result)
    return rows


async def main_async(args: argparse.Namespace) -> int:
    runs = []
    trees = list(args.trees) or [None]
    names = [(tree, name) for tree in trees for name in VARIANTS]
    for round_ in range(args.rounds):
        shift = round_ % len(names)
        for tree, name in names[shift:] + names[:shift]:
            runs += await measure(args, VARIANTS[name], tree)
    names = [f"{name} {tree}" if tree else name for tree, name in names]
    summary = []
    for batch in args.batch_sizes:
        row: dict = {"batch": batch}
        for name in names:
            # A run whose service did not start (or stored nothing) has no figures.
            mine = [r for r in runs if r["batch_size"] == batch and r["variant"] == name and r["statements"]]
            if not mine:
                row[name] = None
                continue
            row[name] = {
                "median_statements_per_s": statistics.median(r["statements_per_s"] for r in mine),
                "median_cpu_us_per_statement": statistics.median(r["cpu_us_per_statement"] for r in mine),
            }
        for tree in trees:
            sealed, clear = row["sealed" + (f" {tree}" if tree else "")], row["clear" + (f" {tree}" if tree else "")]
            suffix = f" {tree}" if tree else ""
            if sealed is None or clear is None:
                continue
            row["sealed_cpu_over_clear" + suffix] = round(
                sealed["median_cpu_us_per_statement"] / clear["median_cpu_us_per_statement"], 3)
            row["sealed_rate_over_clear" + suffix] = round(
                sealed["median_statements_per_s"] / clear["median_statements_per_s"], 3)
        summary.append(row)
        print(json.dumps(row))
    record = {
        "benchmark": "seal_ab",
        "recorded_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": "python bench/seal_ab.py " + " ".join(sys.argv[1:]),
        "note": args.note,
        "settings": {"LRS_HTTP_WORKERS": args.workers, "LRS_PROJECTIONS_ENABLED": "false",
                     "concurrency": args.concurrency, "duration_s": args.duration, "prepass": args.prepass,
                     "stable_names": args.stable_names},
        "trees": args.trees,
        "cores": os.cpu_count(),
        "runs": runs,
        "summary": summary,
    }
    out = Path(args.output or RESULTS_DIR / f"seal_ab-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}.json")
    out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch-sizes", type=lambda s: [int(x) for x in s.split(",")], default=[100, 1])
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--duration", type=float, default=15)
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--workers", type=int, default=2, help="LRS_HTTP_WORKERS (default 2)")
    parser.add_argument("--output", help="result file (default: bench/results/seal_ab-<time>.json)")
    parser.add_argument("--note", default="")
    parser.add_argument("--scratch", help="where the services' data dirs go (default: the temp dir)")
    parser.add_argument("--tree", action="append", default=[], metavar="NAME=PATH",
                        help="a source tree to run `lrs serve` from (repeat to compare builds, alternated)")
    parser.add_argument("--prepass", type=int, default=0,
                        help="statements sent (batch 100) before measuring, so learners are known (50000: all)")
    parser.add_argument("--stable-names", action="store_true",
                        help="one name per learner (default: the template's new name in every statement)")
    args = parser.parse_args()
    if args.stable_names:
        use_stable_names()
    args.start_service, args.data_dir = True, None
    if args.output:
        args.output = str(Path(args.output).resolve())  # measure() runs each service from its tree
    args.trees = {name: str(Path(path).resolve()) for name, path in (t.split("=", 1) for t in args.tree)}
    args.scratch = args.scratch or tempfile.gettempdir()
    try:
        import uvloop
    except ImportError:
        return run_stoppable(main_async(args), "seal_ab")
    return run_stoppable(main_async(args), "seal_ab", uvloop.run)


if __name__ == "__main__":
    raise SystemExit(main())
