"""Would a wait a group fewer pay with the group's data still in binary?
(branch b1y; docs/scaling.md, "A group's INSERT with its COMMIT in one
round trip: tried, reverted").

asyncpg sends each execution with its own Sync, so a group's INSERT and
its COMMIT take two round trips.  libpq's pipeline mode (psycopg 3) sends
several executions before one Sync.  On one connection each, in a
transaction begun as the writer begins its own, a real group of 16
statements is inserted again and again at the head and rolled back
(ROLLBACK stands for COMMIT so that the store does not grow):

- ``asyncpg``: ``fetchrow(INSERT_GROUP, ...)``, then ``ROLLBACK; BEGIN; SET LOCAL ...`` (two round trips);
- ``psycopg``: the same two round trips through psycopg (the driver's own cost);
- ``psycopg pipeline``: INSERT_GROUP, ROLLBACK, BEGIN, SET LOCAL, one Sync (one round trip).

Process CPU of the client and of the backend a group, blocks alternated.
psycopg is not a dependency of the project: ``uv pip install
'psycopg[binary]'`` into the venv that runs this::

    python bench/insert_pipeline_cost.py --url postgresql://postgres@/postgres?host=/path/run
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from pathlib import Path

import asyncpg
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from process_cpu import cpu_s, load_average  # noqa: E402
from store_writer import AUTHORITY, sample_statement, scratch_database  # noqa: E402
from writer_plans import prefill  # noqa: E402

import lrs.store.group_write as group_write  # noqa: E402
from lrs.ingest.prepare import prepare_statements  # noqa: E402
from lrs.store import StatementWriter, create_pool  # noqa: E402
from lrs.store.group_commit_sql import INSERT_GROUP, SELECT_HEAD  # noqa: E402

SET_GENERIC = "SET LOCAL plan_cache_mode = force_generic_plan"


async def one_group(url: str) -> list:
    """INSERT_GROUP's parameters for a group of 16 statements, as the writer made them."""
    kept: dict[str, list] = {"columns": [], "authority": []}
    columns, authority = group_write.group_columns, group_write.authority_keys
    group_write.group_columns = lambda plan: kept["columns"].append(columns(plan)) or kept["columns"][-1]
    group_write.authority_keys = lambda plan: kept["authority"].append(authority(plan)) or kept["authority"][-1]
    pool = await create_pool(url, min_size=1, max_size=2)
    writer = StatementWriter(pool, wait_ms=50.0, shared_log=True)
    await writer.start()
    batches = [prepare_statements([sample_statement(20_000_000 + i)], version="1.0.3", authority=AUTHORITY,
                                  new_id=uuid.uuid4) for i in range(16)]
    await asyncio.gather(*(writer.append("default", b, defines=False) for b in batches))
    await writer.close()
    await pool.close()
    group_write.group_columns, group_write.authority_keys = columns, authority
    index = max(range(len(kept["columns"])), key=lambda i: len(kept["columns"][i][1]))
    return [*kept["columns"][index], False, False, kept["authority"][index], [], []]


def at_head(parameters: list, position: int, hash_: bytes) -> list:
    p = list(parameters)
    count = len(p[1])
    p[0], p[7], p[15] = position + 1, hash_, position + count
    p[1] = [uuid.uuid4() for _ in range(count)]
    p[4] = [uuid.uuid4() for _ in range(count)]
    return p


async def asyncpg_block(url: str, parameters: list, groups: int) -> tuple[float, float, float]:
    conn = await asyncpg.connect(url)
    backend = conn.get_server_pid()
    head = await conn.fetchrow(SELECT_HEAD)
    await conn.execute(f"BEGIN; {SET_GENERIC}")
    for _ in range(10):  # prepared, generic plan
        await conn.fetchrow(INSERT_GROUP, *at_head(parameters, head["position"], head["hash"]))
        await conn.execute(f"ROLLBACK; BEGIN; {SET_GENERIC}")
    own, server = time.process_time(), cpu_s(backend)
    for _ in range(groups):
        await conn.fetchrow(INSERT_GROUP, *at_head(parameters, head["position"], head["hash"]))
        await conn.execute(f"ROLLBACK; BEGIN; {SET_GENERIC}")
    own, server = time.process_time() - own, cpu_s(backend) - server
    await conn.execute("ROLLBACK")
    await conn.close()
    return own, server, 0.0


async def psycopg_block(url: str, parameters: list, groups: int, pipeline: bool) -> tuple[float, float, float]:
    conn = await psycopg.AsyncConnection.connect(url, autocommit=True, prepare_threshold=None)
    backend = conn.info.backend_pid
    cur = psycopg.AsyncRawCursor(conn)
    await cur.execute(SELECT_HEAD)
    position, hash_, _ = await cur.fetchone()
    await conn.execute("BEGIN")
    await conn.execute(SET_GENERIC)

    async def group() -> None:
        p = at_head(parameters, position, hash_)
        if pipeline:
            async with conn.pipeline():
                await cur.execute(INSERT_GROUP, p, binary=True, prepare=True)
                await conn.execute("ROLLBACK")
                await conn.execute("BEGIN")
                await conn.execute(SET_GENERIC)
            await cur.fetchone()
        else:
            await cur.execute(INSERT_GROUP, p, binary=True, prepare=True)
            await cur.fetchone()
            await conn.execute(f"ROLLBACK; BEGIN; {SET_GENERIC}")

    for _ in range(10):
        await group()
    own, server = time.process_time(), cpu_s(backend)
    for _ in range(groups):
        await group()
    own, server = time.process_time() - own, cpu_s(backend) - server
    await conn.execute("ROLLBACK")
    await conn.close()
    return own, server, 0.0


async def run(args: argparse.Namespace) -> None:
    async with scratch_database(args.url, "lrs_insert_pipeline") as url:
        await prefill(url, args.prefill)
        parameters = await one_group(url)
        forms = ("asyncpg", "psycopg", "psycopg pipeline")
        for r in range(args.rounds):
            for form in (forms if r % 2 == 0 else tuple(reversed(forms))):
                wall = time.perf_counter()
                if form == "asyncpg":
                    own, server, _ = await asyncpg_block(url, parameters, args.groups)
                else:
                    own, server, _ = await psycopg_block(url, parameters, args.groups, form.endswith("pipeline"))
                wall = time.perf_counter() - wall
                print(json.dumps({
                    "round": r + 1, "form": form, "groups": args.groups, "statements_per_group": len(parameters[1]),
                    "client_cpu_us_per_group": round(own / args.groups * 1e6, 1),
                    "backend_cpu_us_per_group": round(server / args.groups * 1e6, 1),
                    "wall_us_per_group": round(wall / args.groups * 1e6, 1),
                    "load_average": load_average(),
                }), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True, help="PostgreSQL server URL (a scratch database is created)")
    parser.add_argument("--prefill", type=int, default=6000)
    parser.add_argument("--groups", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
