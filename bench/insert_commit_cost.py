"""What a group's INSERT sent with its COMMIT costs against the INSERT in a
round trip of its own (branch b1y), on one connection, without the writer's
other work: the client process's CPU and the backend's, a group.

A real group of 16 single-statement requests is written once by a
StatementWriter and its INSERT's parameters kept; then, on one connection,
in a transaction begun as the writer begins its own, the same group is
inserted again and again (new ids, at the current head) and rolled back:

- ``separate``: ``fetchrow(INSERT_GROUP, ...)`` then ``ROLLBACK; BEGIN ...``
  (two round trips, as the writer before this branch, COMMIT aside);
- ``combined``: ``EXECUTE lrs_insert_group(<literals>); ROLLBACK; BEGIN ...``
  (one round trip);
- ``literal, separate`` (``--literal-separate``): the EXECUTE, then
  ``ROLLBACK; BEGIN ...`` (two round trips: the literals' cost alone).

ROLLBACK stands for COMMIT so that the store does not grow (the WAL
flush is the same in both).  Blocks of ``--groups`` alternate, ``--rounds``
times; the output is one JSON line a block::

    python bench/insert_commit_cost.py --url postgresql://postgres@/postgres?host=/path/run
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from process_cpu import cpu_s, load_average  # noqa: E402
from store_writer import AUTHORITY, sample_statement, scratch_database  # noqa: E402
from writer_plans import prefill  # noqa: E402

import lrs.store.group_write  # noqa: E402
from lrs.ingest.prepare import prepare_statements  # noqa: E402
from lrs.store import StatementWriter, create_pool  # noqa: E402
from lrs.store.group_commit_sql import BEGIN_GROUP_GENERIC_PLANS, INSERT_GROUP, SELECT_HEAD  # noqa: E402
from lrs.store.group_insert_commit import insert_parameters, prepare  # noqa: E402


async def one_group(url: str) -> tuple:
    """The INSERT parameters of one group of 16 statements, as the writer made them."""
    kept: list[tuple] = []
    real = lrs.store.group_write.with_commit_query

    def keep(parameters, then):
        kept.append(tuple(parameters))
        return real(parameters, then)

    lrs.store.group_write.with_commit_query = keep
    pool = await create_pool(url, min_size=1, max_size=2)
    writer = StatementWriter(pool, wait_ms=50.0, shared_log=True)
    await writer.start()
    batches = [prepare_statements([sample_statement(20_000_000 + i)], version="1.0.3", authority=AUTHORITY,
                                  new_id=uuid.uuid4) for i in range(16)]
    await asyncio.gather(*(writer.append("default", b, defines=True) for b in batches))
    await writer.close()
    await pool.close()
    lrs.store.group_write.with_commit_query = real
    return max(kept, key=lambda p: len(p[1]))


def at_head(parameters: tuple, head: asyncpg.Record) -> list:
    """The kept group's parameters for a group after ``head``, with new ids."""
    p = list(parameters)
    count = len(p[1])
    p[0] = head["position"] + 1
    p[1] = [uuid.uuid4() for _ in range(count)]
    p[4] = [uuid.uuid4() for _ in range(count)]
    p[7] = head["hash"]
    p[15] = head["position"] + count
    return p


async def block(conn: asyncpg.Connection, backend: int, parameters: tuple, combined: bool, groups: int) -> dict:
    head = await conn.fetchrow(SELECT_HEAD)
    own, server, wall = time.process_time(), cpu_s(backend), time.perf_counter()
    for _ in range(groups):
        p = at_head(parameters, head)
        if combined == "literal":
            await conn.execute(insert_parameters(p))
            await conn.execute(f"ROLLBACK; {BEGIN_GROUP_GENERIC_PLANS}")
        elif combined:
            await conn.execute(f"{insert_parameters(p)}; ROLLBACK; {BEGIN_GROUP_GENERIC_PLANS}")
        else:
            await conn.fetchrow(INSERT_GROUP, *p)
            await conn.execute(f"ROLLBACK; {BEGIN_GROUP_GENERIC_PLANS}")
    own, server, wall = time.process_time() - own, cpu_s(backend) - server, time.perf_counter() - wall
    return {
        "form": "literal, separate" if combined == "literal" else "combined" if combined else "separate",
        "groups": groups,
        "statements_per_group": len(parameters[1]),
        "client_cpu_us_per_group": round(own / groups * 1e6, 1),
        "backend_cpu_us_per_group": round(server / groups * 1e6, 1),
        "wall_us_per_group": round(wall / groups * 1e6, 1),
        "load_average": load_average(),
    }


async def run(args: argparse.Namespace) -> None:
    async with scratch_database(args.url, "lrs_insert_commit") as url:
        await prefill(url, args.prefill)
        parameters = await one_group(url)
        conn = await asyncpg.connect(url)
        await prepare(conn)
        backend = conn.get_server_pid()
        await conn.execute(BEGIN_GROUP_GENERIC_PLANS)
        for form in (False, True):  # warm both
            await block(conn, backend, parameters, form, 50)
        for r in range(args.rounds):
            forms = (False, True, "literal") if args.literal_separate else (False, True)
            for combined in (forms if r % 2 == 0 else tuple(reversed(forms))):
                print(json.dumps({"round": r + 1, **await block(conn, backend, parameters, combined, args.groups)}),
                      flush=True)
        await conn.execute("ROLLBACK")
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True, help="PostgreSQL server URL (a scratch database is created)")
    parser.add_argument("--prefill", type=int, default=6000)
    parser.add_argument("--groups", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--uvloop", action="store_true")
    parser.add_argument("--literal-separate", action="store_true",
                        help="also the literal EXECUTE in a round trip of its own, then ROLLBACK; BEGIN")
    args = parser.parse_args()
    if args.uvloop:
        import uvloop
        uvloop.install()
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
