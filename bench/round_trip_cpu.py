"""The client's CPU of one asyncpg round trip, the floor under each of the
three a group commit makes (the head lock's call, the INSERT, COMMIT with the
next BEGIN): user and system µs a call in this process, on asyncio or uvloop,
with asyncpg's command timeout (a timer a call, as the service's pools) and
without::

    python bench/round_trip_cpu.py --url postgresql://postgres@/postgres?host=/path/run [--uvloop]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import time

import asyncpg

CALLS = [("SELECT 1", False), ("SELECT $1::int + 1", True), ("COMMIT; BEGIN", None)]


async def run(url: str, calls: int, timeout: float | None) -> list[dict]:
    conn = await asyncpg.connect(url, command_timeout=timeout)
    await conn.execute("BEGIN")
    rows = []
    for query, with_argument in CALLS:
        before, started = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        for i in range(calls):
            if with_argument is None:
                await conn.execute(query)
            elif with_argument:
                await conn.fetchval(query, i)
            else:
                await conn.fetchval(query)
        after = resource.getrusage(resource.RUSAGE_SELF)
        rows.append({"query": query, "command_timeout": timeout,
                     "user_us": round((after.ru_utime - before.ru_utime) / calls * 1e6, 1),
                     "system_us": round((after.ru_stime - before.ru_stime) / calls * 1e6, 1),
                     "wall_us": round((time.perf_counter() - started) / calls * 1e6)})
    await conn.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True)
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--uvloop", action="store_true")
    args = parser.parse_args()
    for timeout in (60.0, None):
        main_ = run(args.url, args.calls, timeout)
        if args.uvloop:
            import uvloop
            rows = uvloop.run(main_)
        else:
            rows = asyncio.run(main_)
        for row in rows:
            print(json.dumps({"loop": "uvloop" if args.uvloop else "asyncio", **row}))


if __name__ == "__main__":
    main()
