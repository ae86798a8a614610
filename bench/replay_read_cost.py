"""What reading a replay's log costs, by the way it is read: the replay's
pages (``SELECT … ORDER BY position LIMIT n``, asyncpg decoding each row)
against one binary COPY of the same rows (bytes handed over unparsed, as a
lower bound of what a COPY-reading replay would pay before parsing them).

Reads a log ``bench/projection_ab.py`` filled (start PostgreSQL on its
``--data-dir`` first), alternating the two ways, and reports the client's CPU
µs an event and PostgreSQL's (its ended backends included: each way reads on
a connection of its own, closed after).

    .venv/bin/python bench/replay_read_cost.py --database-url URL --postmaster PID --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncpg  # noqa: E402

from bench.process_cpu import tree_cpu_s  # noqa: E402

PAGE = 10_000
SELECT_PAGE = ("SELECT position, tenant, event_type, payload FROM events WHERE position > $1 AND position <= $2 "
               "ORDER BY position LIMIT $3")


async def pages(conn: asyncpg.Connection, total: int) -> int:
    read, after = 0, 0
    while after < total:
        rows = await conn.fetch(SELECT_PAGE, after, total, PAGE)
        if not rows:
            break
        read += len(rows)
        after = rows[-1][0]
    return read


async def copy(conn: asyncpg.Connection, total: int) -> int:
    size = 0

    async def sink(chunk: bytes) -> None:
        nonlocal size
        size += len(chunk)

    await conn.copy_from_query(
        "SELECT position, tenant, event_type, payload FROM events WHERE position <= $1 ORDER BY position",
        total, output=sink, format="binary",
    )
    return total


async def measure(url: str, postmaster: int, way: str) -> dict:
    conn = await asyncpg.connect(url)
    total = int(await conn.fetchval("SELECT position FROM log_head"))
    pg, cpu, wall = tree_cpu_s(postmaster, ended=True), time.process_time(), time.monotonic()
    read = await (pages if way == "pages" else copy)(conn, total)
    cpu, wall = time.process_time() - cpu, time.monotonic() - wall
    await conn.close()
    await asyncio.sleep(0.2)  # the backend ends and is waited for
    pg = tree_cpu_s(postmaster, ended=True) - pg
    return {"way": way, "events": read, "client_cpu_us_per_event": round(cpu / total * 1e6, 3),
            "postgresql_cpu_us_per_event": round(pg / total * 1e6, 3), "wall_s": round(wall, 3)}


async def main_async(args: argparse.Namespace) -> list[dict]:
    runs = []
    for round_ in range(args.rounds):
        for way in (("pages", "copy") if round_ % 2 == 0 else ("copy", "pages")):
            runs.append(await measure(args.database_url, args.postmaster, way))
            print(json.dumps(runs[-1]), flush=True)
    return runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--postmaster", type=int, required=True, help="the PostgreSQL server's pid")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    import uvloop

    uvloop.run(main_async(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
