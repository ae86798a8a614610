"""Overload benchmark: many more concurrent clients than the service can serve at once.

``--connections`` clients (default 2,048) each POST one statement at a time
for ``--duration`` seconds.  A client answered 503 (shed) or 429 waits the
one second ``Retry-After`` asks for, as a well-behaved client does, then
tries again.  Reported: the latency of the requests answered 200 (p50, p99,
max), how many requests got each status, and the peak resident memory of
the service's processes, sampled every 0.2 s.

    python bench/overload.py --start-service
    python bench/overload.py --start-service --no-shedding   # the same load with shedding off

The target: p99 of the 200s at most 500 ms, memory bounded.  Results go to
``bench/results/overload-<UTC time>.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.ingest import RESULTS_DIR, _Bodies, _Connection, _machine, add_service_options, bench_target  # noqa: E402

RETRY_AFTER_S = 1.0


async def _client(conn: _Connection, bodies: _Bodies, deadline: float, warmup_end: float,
                  ok: list[float], statuses: dict[str, int]) -> None:
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        try:
            status = await conn.post(bodies.next())
        except (OSError, ConnectionError, asyncio.IncompleteReadError, ValueError) as exc:
            key = type(exc).__name__
            conn.close()
            await asyncio.sleep(0.05)
        else:
            key = str(status)
            if status == 200 and started >= warmup_end:
                ok.append(time.perf_counter() - started)
        if started >= warmup_end:
            statuses[key] = statuses.get(key, 0) + 1
        if key in ("503", "429"):
            await asyncio.sleep(RETRY_AFTER_S)
    conn.close()


def _service_pids(port: int) -> list[int]:
    """Processes of the service listening on ``port`` (lrs serve, its workers and its PostgreSQL)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if f"LRS_HTTP_PORT={port}".encode() in environ.split(b"\0"):
            pids.append(int(entry.name))
    return pids


def _rss_mib(pids: list[int]) -> float:
    total_kib = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kib += int(line.split()[1])
        except (OSError, ValueError):
            continue
    return total_kib / 1024


async def _sample_memory(port: int, samples: list[float], stop: asyncio.Event) -> None:
    pids = _service_pids(port)
    while not stop.is_set():
        samples.append(_rss_mib(pids))
        try:
            await asyncio.wait_for(stop.wait(), 0.2)
        except TimeoutError:
            pass


async def run(args: argparse.Namespace) -> dict:
    if args.no_shedding:
        os.environ["LRS_SHED_LOOP_LAG_MS"] = "0"
        os.environ["LRS_SHED_QUEUE_STATEMENTS"] = "0"
        os.environ["LRS_SHED_MAX_IN_FLIGHT"] = "0"
    elif args.loop_lag_ms is not None:
        os.environ["LRS_SHED_LOOP_LAG_MS"] = str(args.loop_lag_ms)
    os.environ.setdefault("LRS_PROJECTIONS_ENABLED", "false")
    async with bench_target(args) as (url, key, secret):
        parts = urlsplit(url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        auth = "Basic " + base64.b64encode(f"{key}:{secret}".encode()).decode()
        bodies = _Bodies(1, 30_000)
        ok: list[float] = []
        statuses: dict[str, int] = {}
        memory: list[float] = []
        stop = asyncio.Event()
        sampler = asyncio.create_task(_sample_memory(port, memory, stop))
        start = time.perf_counter()
        warmup_end = start + args.warmup
        deadline = warmup_end + args.duration
        await asyncio.gather(*(
            _client(_Connection(host, port, "/xapi/statements", auth), bodies, deadline, warmup_end, ok, statuses)
            for _ in range(args.connections)
        ))
        measured = time.perf_counter() - warmup_end
        stop.set()
        await sampler
    ok.sort()

    def pct(p: float) -> float | None:
        return round(ok[min(len(ok) - 1, int(p * len(ok)))] * 1000, 1) if ok else None

    return {
        "benchmark": "overload",
        "recorded_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "target": url if not args.start_service else "lrs serve (embedded PostgreSQL and nats-server)",
        "machine": _machine(),
        "note": args.note,
        "settings": {
            "connections": args.connections,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "shedding": not args.no_shedding,
            "LRS_SHED_LOOP_LAG_MS": os.environ.get("LRS_SHED_LOOP_LAG_MS", "default"),
            "LRS_SHED_QUEUE_STATEMENTS": os.environ.get("LRS_SHED_QUEUE_STATEMENTS", "default"),
            "LRS_SHED_MAX_IN_FLIGHT": os.environ.get("LRS_SHED_MAX_IN_FLIGHT", "default"),
            "LRS_HTTP_WORKERS": os.environ.get("LRS_HTTP_WORKERS", "1"),
        },
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),
        "ok_per_s": round(len(ok) / measured, 1),
        "latency_of_200_ms": {"p50": pct(0.50), "p99": pct(0.99), "max": pct(1.0)},
        "statuses": dict(sorted(statuses.items())),
        "service_rss_mib": {
            "first": round(memory[0], 1) if memory else None,
            "peak": round(max(memory), 1) if memory else None,
            "last": round(memory[-1], 1) if memory else None,
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=2048, help="concurrent clients (default: 2048)")
    parser.add_argument("--duration", type=float, default=15.0, help="measured seconds (default: 15)")
    parser.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds first (default: 3)")
    parser.add_argument("--no-shedding", action="store_true", help="turn load shedding off (for comparison)")
    parser.add_argument("--loop-lag-ms", type=float, help="LRS_SHED_LOOP_LAG_MS for the started service")
    add_service_options(parser, "overload")
    args = parser.parse_args(argv)
    result = asyncio.run(run(args))
    print(json.dumps(result, indent=2))
    if not args.no_save:
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        out = args.output or RESULTS_DIR / f"overload-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}.json"
        Path(out).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
