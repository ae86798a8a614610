"""Failed-authentication flood: what a flood of unknown keys costs a legitimate client.

``--flooders`` clients (default 16) send requests with unknown keys as fast
as they are answered, while one legitimate client (a verified, cached key)
sends one request at a time; reported: the legitimate client's latency
(p50, p99) quiet (no flood) and under the flood, and the flood's statuses.

Every flood request answered 401 ran the slow hash and wrote one row update
to the shared failure counts in PostgreSQL; a 429 ran neither (the name was
refused in the process, see lrs/http/throttle.py).  So the database writes
of a flood are its 401s, bounded by the hashes the CPU can do.

    python bench/auth_flood.py --start-service                     # flood from one address
    python bench/auth_flood.py --start-service --spread-addresses  # each request from its own address

``--spread-addresses`` starts the service with ``LRS_TRUSTED_PROXIES=127.0.0.1``
and gives each flood request its own ``X-Forwarded-For``: the per-address
limit never applies, the worst case for hashes and writes.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp  # noqa: E402

from bench.ingest import add_service_options, bench_target, run_stoppable  # noqa: E402
from bench.run_record import load_average, machine, write_result  # noqa: E402


def _basic(key: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{key}:{secret}".encode()).decode()


async def _legit(session: aiohttp.ClientSession, url: str, auth: str, seconds: float) -> list[float]:
    latencies = []
    deadline = time.perf_counter() + seconds
    headers = {"Authorization": auth, "X-Experience-API-Version": "1.0.3"}
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        async with session.get(f"{url}/xapi/statements?limit=1", headers=headers) as response:
            await response.read()
            assert response.status == 200, response.status
        latencies.append(time.perf_counter() - started)
        await asyncio.sleep(0.01)
    return latencies


async def _flooder(session: aiohttp.ClientSession, url: str, stop: asyncio.Event, spread: bool,
                   statuses: dict[str, int]) -> None:
    draw = random.Random()
    while not stop.is_set():
        headers = {"Authorization": _basic(f"unknown-{draw.getrandbits(64):x}", "guess"),
                   "X-Experience-API-Version": "1.0.3"}
        if spread:
            headers["X-Forwarded-For"] = f"10.{draw.randrange(256)}.{draw.randrange(256)}.{draw.randrange(1, 255)}"
        try:
            async with session.get(f"{url}/xapi/statements?limit=1", headers=headers) as response:
                await response.read()
                key = str(response.status)
        except aiohttp.ClientError as exc:
            key = type(exc).__name__
        statuses[key] = statuses.get(key, 0) + 1


def _summary(latencies: list[float]) -> dict:
    ordered = sorted(latencies)

    def pct(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000, 2)

    return {"requests": len(ordered), "p50_ms": pct(0.5), "p99_ms": pct(0.99)}


async def run(args: argparse.Namespace) -> dict:
    if args.spread_addresses:
        os.environ["LRS_TRUSTED_PROXIES"] = "127.0.0.1"
    os.environ.setdefault("LRS_PROJECTIONS_ENABLED", "false")
    async with bench_target(args) as (url, key, secret):
        auth = _basic(key, secret)
        connector = aiohttp.TCPConnector(limit=args.flooders + 4)
        async with aiohttp.ClientSession(connector=connector) as session:
            await _legit(session, url, auth, 1.0)  # verified and cached
            quiet = await _legit(session, url, auth, args.duration)
            stop = asyncio.Event()
            statuses: dict[str, int] = {}
            flood = [asyncio.ensure_future(_flooder(session, url, stop, args.spread_addresses, statuses))
                     for _ in range(args.flooders)]
            await asyncio.sleep(1.0)
            statuses.clear()
            started = time.perf_counter()
            flooded = await _legit(session, url, auth, args.duration)
            elapsed = time.perf_counter() - started
            stop.set()
            await asyncio.gather(*flood)
    return {
        "benchmark": "auth-flood",
        "recorded_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "note": args.note,
        "command": " ".join(["python", "bench/auth_flood.py", *sys.argv[1:]]),
        "settings": {"flooders": args.flooders, "duration_s": args.duration,
                     "spread_addresses": args.spread_addresses},
        "load_average_1m_at_end": load_average()[0],
        "legitimate_quiet": _summary(quiet),
        "legitimate_under_flood": _summary(flooded),
        "flood_statuses": dict(sorted(statuses.items())),
        "flood_per_s": round(sum(statuses.values()) / elapsed, 1),
        "database_writes_per_s": round(statuses.get("401", 0) / elapsed, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--flooders", type=int, default=16, help="concurrent flood clients (default: 16)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of each phase (default: 10)")
    parser.add_argument("--spread-addresses", action="store_true",
                        help="each flood request from its own address (through a trusted proxy)")
    add_service_options(parser, "auth-flood")
    args = parser.parse_args(argv)
    result = run_stoppable(run(args), "auth_flood")
    print(json.dumps(result, indent=2))
    if not args.no_save:
        write_result(result, "auth-flood", output=args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
