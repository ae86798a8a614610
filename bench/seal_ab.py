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

from bench.ingest import RESULTS_DIR, bench_target, run_one  # noqa: E402

VARIANTS = {"clear": "false", "sealed": "true"}


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


async def measure(args: argparse.Namespace, seal: str) -> list[dict]:
    os.environ.update({"LRS_SEAL_PERSONAL_DATA": seal, "LRS_HTTP_WORKERS": str(args.workers),
                       "LRS_PROJECTIONS_ENABLED": "false"})
    rows = []
    # bench_target makes its data dir under tempfile's directory: a fresh one
    # per service, so the embedded PostgreSQL and nats-server are found by it.
    tempfile.tempdir = tempfile.mkdtemp(prefix="seal-ab-", dir=args.scratch)
    async with bench_target(args) as (url, key, secret):
        auth = "Basic " + base64.b64encode(f"{key}:{secret}".encode()).decode()
        [data_dir] = Path(tempfile.tempdir).iterdir()
        for batch in args.batch_sizes:
            await run_one(url, auth, batch, args.concurrency, args.warmup, 0)  # not measured
            processes = service_processes(str(data_dir))
            load_before = os.getloadavg()
            before = cpu_seconds(processes)
            result = await run_one(url, auth, batch, args.concurrency, args.duration, 0)
            after = cpu_seconds(processes)
            cpu = sum(after[pid] - before[pid] for pid in after if pid in before)
            by_kind: dict[str, float] = {}
            for proc in processes:
                if proc.pid in after and proc.pid in before:
                    by_kind[kind(proc)] = by_kind.get(kind(proc), 0.0) + after[proc.pid] - before[proc.pid]
            result.update(
                variant="sealed" if seal == "true" else "clear",
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
    names = list(VARIANTS)
    for round_ in range(args.rounds):
        order = names if round_ % 2 == 0 else names[::-1]
        for name in order:
            runs += await measure(args, VARIANTS[name])
    summary = []
    for batch in args.batch_sizes:
        row: dict = {"batch": batch}
        for name in names:
            mine = [r for r in runs if r["batch_size"] == batch and r["variant"] == name]
            row[name] = {
                "median_statements_per_s": statistics.median(r["statements_per_s"] for r in mine),
                "median_cpu_us_per_statement": statistics.median(r["cpu_us_per_statement"] for r in mine),
            }
        row["sealed_cpu_over_clear"] = round(
            row["sealed"]["median_cpu_us_per_statement"] / row["clear"]["median_cpu_us_per_statement"], 3)
        row["sealed_rate_over_clear"] = round(
            row["sealed"]["median_statements_per_s"] / row["clear"]["median_statements_per_s"], 3)
        summary.append(row)
        print(json.dumps(row))
    record = {
        "benchmark": "seal_ab",
        "recorded_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": "python bench/seal_ab.py " + " ".join(sys.argv[1:]),
        "note": args.note,
        "settings": {"LRS_HTTP_WORKERS": args.workers, "LRS_PROJECTIONS_ENABLED": "false",
                     "concurrency": args.concurrency, "duration_s": args.duration},
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
    args = parser.parse_args()
    args.start_service, args.data_dir = True, None
    args.scratch = args.scratch or tempfile.gettempdir()
    try:
        import uvloop

        return uvloop.run(main_async(args))
    except ImportError:
        return asyncio.run(main_async(args))


if __name__ == "__main__":
    raise SystemExit(main())
