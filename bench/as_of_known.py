"""``as_of`` on the known clock before (folding the log again) and after (``known_at``), alternating on one kept store.

Opens a store that ``bench/growth.py --keep`` left under ``--data`` (its
PostgreSQL in ``DATA/postgres``) and counts the ministry's certified learners
at ``as_of`` on the known clock two ways, one after the other, ``--runs``
times each, in this process:

* ``before``: what the summary did before (bench-local copy): the last
  position stored by then found by a binary search with one query a step,
  then the members' statements stored by then folded again from the log
  (``known_clock.certified_by_refold`` over every member);
* ``after``: ``queries.unit_summary(..., clock="known")`` as the HTTP handler
  calls it (the unit, its ancestors' targets, the position in one query and
  ``known_clock.certified_known_at``: the certifications' ``known_at``,
  members who lost evidence to a later voiding folded again).

Each at several moments: now, and the stored times of the events at 25 %, 50 %
and 75 % of the log (earlier moments meet more voidings after them).  Both
must give the same headcount and certified count.  ``before`` runs in one
repeatable-read transaction as it did.  Times are wall-clock milliseconds
(p50, p99, max) and this process's CPU; PostgreSQL's CPU is not in them.

    nice -n 10 .venv/bin/python bench/as_of_known.py --data /work/benchdata/asof/store --label asof
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bulk_store as gen  # noqa: E402
from lrs.runtime.postgres import EmbeddedPostgres  # noqa: E402
from projections.competency.catalog import load_catalog  # noqa: E402
from projections.competency.known_clock import certified_by_refold  # noqa: E402
from projections.competency.queries import SELECT_CHECKPOINT, resolve_program, unit_summary  # noqa: E402
from projections.units.sql import SELECT_MEMBERS_AT  # noqa: E402

import asyncpg  # noqa: E402
from run_record import add_result_options, load_average, machine, write_result  # noqa: E402

MINISTRY = "growth-ministry"  # bench/growth.py's


async def former_position_at(conn: asyncpg.Connection, moment: datetime) -> int:
    """The binary search as it was: one query a step."""
    low, high = 0, int(await conn.fetchval("SELECT position FROM log_head WHERE singleton") or 0)
    while low < high:
        middle = (low + high + 1) // 2
        if await conn.fetchval("SELECT stored FROM events WHERE position = $1", middle) <= moment:
            low = middle
        else:
            high = middle - 1
    return low


async def count(pool: asyncpg.Pool, way: str, catalog: Any, program: Any, as_of: datetime) -> tuple[int, int]:
    if way == "after":
        answer = await unit_summary(pool, catalog, "default", MINISTRY, program=program, descendants=True,
                                    as_of=as_of, clock="known")
        return answer["headcount"], answer["certified"]
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        position = min(await former_position_at(conn, as_of), int(await conn.fetchval(SELECT_CHECKPOINT) or 0))
        members = [r["learner"] for r in await conn.fetch(SELECT_MEMBERS_AT, "default", MINISTRY, True, as_of, as_of)]
        return len(members), await certified_by_refold(conn, catalog, "default", program, members, position)


def summary(seconds: list[float], cpu: list[float]) -> dict[str, float]:
    ordered = sorted(seconds)
    return {"p50_ms": round(statistics.median(ordered) * 1000, 2),
            "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 2),
            "max_ms": round(ordered[-1] * 1000, 2), "python_cpu_ms_p50": round(statistics.median(cpu) * 1000, 2)}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    pg = EmbeddedPostgres(args.data / "postgres")
    await pg.start()
    try:
        pool = await asyncpg.create_pool(pg.url_for(gen.DATABASE), min_size=2, max_size=2)
        try:
            catalog = load_catalog()
            program = resolve_program(catalog, None, None)
            head = int(await pool.fetchval("SELECT position FROM log_head"))
            moments = {"now": datetime.now(timezone.utc)}
            for share in (75, 50, 25):
                moments[f"stored at {share}% of the log"] = await pool.fetchval(
                    "SELECT stored FROM events WHERE position = $1", head * share // 100)
            out: dict[str, Any] = {"events": head}
            for name, as_of in moments.items():
                later_voidings = await pool.fetchval(
                    "SELECT count(*) FROM competency_voids v JOIN events e ON e.tenant = v.tenant "
                    "AND e.statement_id = v.voiding_statement_id WHERE e.stored > $1", as_of)
                timings: dict[str, tuple[list[float], list[float]]] = {"before": ([], []), "after": ([], [])}
                answers: dict[str, tuple[int, int]] = {}
                for i in range(args.runs + 1):  # the first round warms up
                    for way in ("before", "after") if i % 2 == 0 else ("after", "before"):
                        cpu, started = time.process_time(), time.perf_counter()
                        answers[way] = await count(pool, way, catalog, program, as_of)
                        if i:
                            timings[way][0].append(time.perf_counter() - started)
                            timings[way][1].append(time.process_time() - cpu)
                if answers["before"] != answers["after"]:
                    raise SystemExit(f"as_of_known: the two ways disagree at {name}: {answers}")
                out[name] = {"as_of": as_of.isoformat(), "headcount": answers["after"][0],
                             "certified": answers["after"][1], "later_voidings": later_voidings,
                             **{way: summary(*t) for way, t in timings.items()}}
                print(name, json.dumps(out[name]), flush=True)
            return out
        finally:
            await pool.close()
    finally:
        await pg.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] + "\n\n" + __doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="a store kept by bench/growth.py --keep")
    parser.add_argument("--runs", type=int, default=20, help="timed counts per way and moment (default: 20)")
    add_result_options(parser)
    args = parser.parse_args(argv)
    started = datetime.now(timezone.utc)
    load_before = load_average()
    result = asyncio.run(run(args))
    record = {"benchmark": "as_of_known", "started": started.isoformat(timespec="seconds"),
              "command": "python " + " ".join(sys.argv), "settings": {"runs": args.runs, "data": str(args.data)},
              "machine": machine(load_before=load_before),
              "note": args.note, "result": result}
    if not args.no_write:
        write_result(record, "as_of_known", args.label or "run", indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
