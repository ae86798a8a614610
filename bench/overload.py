"""Overload benchmark: many more concurrent clients than the service can serve at once.

``--connections`` clients (default 2,048) each POST one statement at a time
for ``--duration`` seconds.  A client answered 503 (shed) or 429 waits the
seconds ``Retry-After`` asks for, as a well-behaved client does, then
tries again.  Reported: the latency of the requests answered 200 (p50, p99,
max), how many requests got each status, and the peak resident memory of
the service's processes, sampled every 0.2 s.

    python bench/overload.py --start-service
    python bench/overload.py --start-service --no-shedding   # the same load with shedding off

The target: p99 of the 200s at most 500 ms, memory bounded.  Results go to
``bench/results/overload-<branch>-<UTC time>.json``.  Before and after,
alternating, in one line (``before``: ``LRS_SHED_LATENCY_MS=0``, the fixed
budgets only; ``after``: the service's defaults)::

    python bench/overload.py --start-service --connections 512,2048 --rounds 2

Where the time goes, beside the client's view: the service's own latency
histogram for POST /xapi/statements and its event-loop lag histogram (from
``/metrics``, over the measured seconds), the CPU seconds of the service's
processes (HTTP, PostgreSQL, NATS) and of the load generator itself: on a
machine of 2 cores the generator competes with the service for them.  The
generator runs on uvloop, in ``--client-processes`` processes.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import multiprocessing
import os
import resource
import signal
import sys
import time
import urllib.request
from datetime import datetime, timezone
from multiprocessing.pool import AsyncResult
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.ingest import _Bodies, _Connection, add_service_options, bench_target, run_stoppable  # noqa: E402
from bench.process_cpu import cpu_s  # noqa: E402
from bench.run_record import branch, load_average, machine, write_result  # noqa: E402

RETRY_AFTER_S = 1.0
BUILD_BODIES_S = 4.0  # generator processes build their request bodies, then all start together


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
        if key in ("503", "429"):  # as asked, but not past the end of the run
            wait = RETRY_AFTER_S if conn.retry_after is None else conn.retry_after
            await asyncio.sleep(max(0.0, min(wait, deadline - time.perf_counter())))
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


def _http_pids(pids: list[int]) -> list[int]:
    """The service's own Python processes (``lrs serve`` and its workers), not PostgreSQL or NATS."""
    out = []
    for pid in pids:
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"lrs" in argv and b"serve" in argv:
            out.append(pid)
    return out


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


async def _sample_memory(port: int, samples: list[float], http_samples: list[float], stop: asyncio.Event) -> None:
    pids = _service_pids(port)
    http = _http_pids(pids)
    while not stop.is_set():
        samples.append(_rss_mib(pids))
        http_samples.append(_rss_mib(http))
        try:
            await asyncio.wait_for(stop.wait(), 0.2)
        except TimeoutError:
            pass


def _own_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _histograms(url: str, auth: str) -> dict[str, dict[float, float]]:
    """Cumulative bucket counts of the service's request and loop-lag histograms."""
    request = urllib.request.Request(f"{url}/metrics", headers={"Authorization": auth})
    text = urllib.request.urlopen(request, timeout=30).read().decode()
    out: dict[str, dict] = {"request": {}, "loop_lag": {}, "shed": {}, "limit": {}}
    for line in text.splitlines():
        if line.startswith("lrs_shed_concurrency_limit "):  # 0: never set, the adaptive limit is off
            out["limit"]["value"] = float(line.rsplit(" ", 1)[1]) or None
            continue
        if line.startswith("lrs_http_request_duration_seconds_bucket{") and 'method="POST"' in line \
                and 'route="/xapi/statements"' in line:
            kind = "request"
        elif line.startswith("lrs_event_loop_lag_seconds_bucket{"):
            kind = "loop_lag"
        elif line.startswith("lrs_shed_total{"):
            reason = line.split('reason="', 1)[1].split('"', 1)[0]
            out["shed"][reason] = float(line.rsplit(" ", 1)[1])
            continue
        else:
            continue
        le = line.split('le="', 1)[1].split('"', 1)[0]
        out[kind][float("inf") if le == "+Inf" else float(le)] = float(line.rsplit(" ", 1)[1])
    return out


def _quantiles(before: dict[float, float], after: dict[float, float]) -> dict:
    """Counts per bucket over the run and the buckets holding p50 and p99 ("<= le")."""
    delta = {le: after.get(le, 0.0) - before.get(le, 0.0) for le in sorted(after)}
    total = delta.get(float("inf"), 0.0)

    def upper(q: float) -> str | None:
        for le, count in delta.items():
            if total and count >= q * total:
                return "+Inf" if le == float("inf") else f"<= {le * 1000:g} ms"
        return None

    return {"count": int(total), "p50": upper(0.50), "p99": upper(0.99),
            "cumulative": {("+Inf" if le == float("inf") else f"{le * 1000:g}ms"): int(c) for le, c in delta.items()}}


def _client_process(host: str, port: int, auth: str, connections: int, start_at: float, warmup: float,
                    duration: float, bodies: int) -> dict:
    """One load-generator process: ``connections`` clients on uvloop, from
    ``start_at`` (wall clock, shared by every generator process)."""
    import uvloop

    async def main() -> dict:
        source = _Bodies(1, bodies)
        ok: list[float] = []
        statuses: dict[str, int] = {}
        await asyncio.sleep(max(0.0, start_at - time.time()))
        start = time.perf_counter()
        warmup_end, deadline = start + warmup, start + warmup + duration
        cpu_at_warmup: list[float] = []

        async def mark() -> None:
            await asyncio.sleep(max(0.0, warmup_end - time.perf_counter()))
            cpu_at_warmup.append(_own_cpu_s())

        marker = asyncio.ensure_future(mark())
        await asyncio.gather(*(
            _client(_Connection(host, port, "/xapi/statements", auth), source, deadline, warmup_end, ok, statuses)
            for _ in range(connections)
        ))
        await marker
        return {"ok": ok, "statuses": statuses, "cpu_s": _own_cpu_s() - cpu_at_warmup[0],
                "measured_s": time.perf_counter() - warmup_end}

    return uvloop.run(main())


def _generator_signals() -> None:
    """A load-generator process's signals, set when the pool starts it.  It
    is forked from the bench's running event loop, whose handlers (which do
    nothing but wake that loop) and wakeup fd it inherits: a Ctrl-C (SIGINT
    to the terminal's whole foreground group) or the pool's SIGTERM then
    neither stopped it nor reached its own loop, and the bench waited for it
    for ever.  Now Ctrl-C is the bench's alone (it cancels the run, whose
    pool then terminates its processes: run_stoppable), SIGTERM ends the
    process at once, without a traceback, and the bench's wakeup fd is let go."""
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


async def _result(pending: AsyncResult) -> dict:
    """A generator process's result, awaited without a thread: one blocked
    in ``get`` on a pool terminated by a Ctrl-C would keep the bench from exiting."""
    while not pending.ready():
        await asyncio.sleep(0.1)
    return pending.get()


def _side_env(args: argparse.Namespace) -> dict[str, str]:
    """The service's shedding settings this run asks for (the rest: the service's defaults)."""
    if args.no_shedding:
        return {"LRS_SHED_LOOP_LAG_MS": "0", "LRS_SHED_QUEUE_STATEMENTS": "0", "LRS_SHED_MAX_IN_FLIGHT": "0",
                "LRS_SHED_LATENCY_MS": "0"}
    env = {}
    for name, value in (("LRS_SHED_LATENCY_MS", args.latency_ms), ("LRS_SHED_LOOP_LAG_MS", args.loop_lag_ms),
                        ("LRS_SHED_MAX_IN_FLIGHT", args.max_in_flight)):
        if value is not None:
            env[name] = str(value)
    return env


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


async def run(args: argparse.Namespace, connections: int, side_env: dict[str, str]) -> dict:
    with _environment({"LRS_PROJECTIONS_ENABLED": os.environ.get("LRS_PROJECTIONS_ENABLED", "false"),
                       **side_env}):
        return await _run(args, connections)


async def _run(args: argparse.Namespace, connections: int) -> dict:
    load_at_start = load_average()[0]
    async with bench_target(args) as (url, key, secret):
        parts = urlsplit(url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        auth = "Basic " + base64.b64encode(f"{key}:{secret}".encode()).decode()
        memory: list[float] = []
        http_memory: list[float] = []
        stop = asyncio.Event()
        sampler = asyncio.create_task(_sample_memory(port, memory, http_memory, stop))
        pids = _service_pids(port)
        per_process = [connections // args.client_processes] * args.client_processes
        per_process[0] += connections - sum(per_process)
        context = multiprocessing.get_context("fork")
        with context.Pool(args.client_processes, initializer=_generator_signals) as pool:
            start_at = time.time() + BUILD_BODIES_S
            pending = [
                pool.apply_async(_client_process, (host, port, auth, n, start_at, args.warmup, args.duration,
                                                   int(40_000 / args.client_processes)))
                for n in per_process
            ]
            await asyncio.sleep(start_at + args.warmup - time.time())
            metrics_before = await asyncio.to_thread(_histograms, url, auth)
            service_cpu_before = cpu_s(*pids)
            await asyncio.sleep(args.duration)
            service_cpu = cpu_s(*pids) - service_cpu_before
            metrics_after = await asyncio.to_thread(_histograms, url, auth)
            results = [await _result(r) for r in pending]
        stop.set()
        await sampler
    ok = sorted(t for r in results for t in r["ok"])
    statuses: dict[str, int] = {}
    for r in results:
        for key, count in r["statuses"].items():
            statuses[key] = statuses.get(key, 0) + count
    measured = max(r["measured_s"] for r in results)
    client_cpu = sum(r["cpu_s"] for r in results)

    def pct(p: float) -> float | None:
        return round(ok[min(len(ok) - 1, int(p * len(ok)))] * 1000, 1) if ok else None

    return {
        "benchmark": "overload",
        "recorded_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "target": url if not args.start_service else "lrs serve (embedded PostgreSQL and nats-server)",
        "machine": machine(),
        "note": args.note,
        "settings": {
            "connections": connections,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "LRS_SHED_LOOP_LAG_MS": os.environ.get("LRS_SHED_LOOP_LAG_MS", "default"),
            "LRS_SHED_QUEUE_STATEMENTS": os.environ.get("LRS_SHED_QUEUE_STATEMENTS", "default"),
            "LRS_SHED_MAX_IN_FLIGHT": os.environ.get("LRS_SHED_MAX_IN_FLIGHT", "default"),
            "LRS_SHED_LATENCY_MS": os.environ.get("LRS_SHED_LATENCY_MS", "default"),
            "LRS_HTTP_WORKERS": os.environ.get("LRS_HTTP_WORKERS", "1"),
            "client_processes": args.client_processes,
        },
        "command": " ".join(["python", "bench/overload.py", *sys.argv[1:]]),
        "load_average_1m": {"start": load_at_start, "end": load_average()[0]},
        "ok_per_s": round(len(ok) / measured, 1),
        "latency_of_200_ms": {"p50": pct(0.50), "p99": pct(0.99), "max": pct(1.0)},
        "statuses": dict(sorted(statuses.items())),
        "service_view": {
            "post_statements_latency": _quantiles(metrics_before["request"], metrics_after["request"]),
            "event_loop_lag": _quantiles(metrics_before["loop_lag"], metrics_after["loop_lag"]),
            "shed_by_reason": {k: int(v - metrics_before["shed"].get(k, 0.0))
                               for k, v in metrics_after["shed"].items()},
            "concurrency_limit_at_end": metrics_after["limit"].get("value"),
        },
        "cpu_share_of_2_cores": {
            "service_processes": round(service_cpu / args.duration / 2, 2),
            "load_generator": round(client_cpu / measured / 2, 2),
        },
        "share_shed": round(statuses.get("503", 0) / max(1, sum(statuses.values())), 3),
        "service_rss_mib": _memory(memory),
        "http_process_rss_mib": _memory(http_memory),
    }


def _memory(samples: list[float]) -> dict:
    return {
        "first": round(samples[0], 1) if samples else None,
        "peak": round(max(samples), 1) if samples else None,
        "last": round(samples[-1], 1) if samples else None,
    }


def _summary(run: dict, side: str) -> dict:
    return {
        "side": side,
        "connections": run["settings"]["connections"],
        "load_1m": run["load_average_1m"],
        "ok_per_s": run["ok_per_s"],
        "p50_of_200_ms": run["latency_of_200_ms"]["p50"],
        "p99_of_200_ms": run["latency_of_200_ms"]["p99"],
        "share_shed": run["share_shed"],
        "shed_by_reason": run["service_view"]["shed_by_reason"],
        "limit_at_end": run["service_view"]["concurrency_limit_at_end"],
        "http_rss_peak_mib": run["http_process_rss_mib"]["peak"],
        "service_rss_peak_mib": run["service_rss_mib"]["peak"],
        "cpu_share_of_2_cores": run["cpu_share_of_2_cores"],
    }


async def compare(args: argparse.Namespace) -> dict:
    """Before and after, alternating: per round, each connection count, the
    two sides in an order that flips every round (a machine getting busier
    or quieter then favours neither)."""
    sides = {"before": dict(item.split("=", 1) for item in args.before_env.split(",") if item),
             "after": _side_env(args)}
    runs = []
    for round_ in range(args.rounds):
        for connections in args.connections:
            order = ["before", "after"] if (round_ + connections) % 2 == 0 else ["after", "before"]
            for side in order:
                result = await run(args, connections, sides[side])
                runs.append({"round": round_ + 1, "side": side, **result})
                print(json.dumps(_summary(result, side)), file=sys.stderr, flush=True)
    return {
        "benchmark": "overload",
        "recorded_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(["python", "bench/overload.py", *sys.argv[1:]]),
        "sides": {"before": sides["before"] or "the service's defaults", "after": sides["after"] or "the service's defaults"},
        "target": "p99 of the 200s <= 500 ms at 2,048 connections, memory bounded",
        "summary": [_summary(r, r["side"]) for r in runs],
        "runs": runs,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=lambda v: [int(x) for x in v.split(",")], default=[2048],
                        help="concurrent clients, or a comma-separated list of counts (default: 2048)")
    parser.add_argument("--duration", type=float, default=15.0, help="measured seconds (default: 15)")
    parser.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds first (default: 3)")
    parser.add_argument("--no-shedding", action="store_true", help="turn load shedding off (for comparison)")
    parser.add_argument("--loop-lag-ms", type=float, help="LRS_SHED_LOOP_LAG_MS for the started service")
    parser.add_argument("--latency-ms", type=float, help="LRS_SHED_LATENCY_MS for the started service")
    parser.add_argument("--max-in-flight", type=int, help="LRS_SHED_MAX_IN_FLIGHT for the started service")
    parser.add_argument("--client-processes", type=int, default=1, help="load-generator processes (default: 1)")
    parser.add_argument("--rounds", type=int, default=0,
                        help="alternate 'before' and 'after' this many rounds at each connection count "
                             "(default: 0, one run per count with the given settings)")
    parser.add_argument("--before-env", default="LRS_SHED_LATENCY_MS=0",
                        help="settings of the 'before' side, NAME=VALUE,... (default: LRS_SHED_LATENCY_MS=0, "
                             "no adaptive limit: the fixed budgets only)")
    add_service_options(parser, "overload")
    args = parser.parse_args(argv)
    if args.rounds:
        result = run_stoppable(compare(args), "overload")
        print(json.dumps(result["summary"], indent=2))
    else:
        async def each() -> dict:
            runs = [await run(args, n, _side_env(args)) for n in args.connections]
            return runs[0] if len(runs) == 1 else {"benchmark": "overload", "runs": runs}

        result = run_stoppable(each(), "overload")
        print(json.dumps(result, indent=2))
    if not args.no_save:
        write_result(result, "overload", branch() or "unknown", output=args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
