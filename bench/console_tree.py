"""Console benchmark: the officials' unit tree for a ministry of 100,000 rostered learners.

Starts a private PostgreSQL (lrs.runtime), loads a roster of one ministry with
``--agencies`` agencies of ``--units`` units each and ``--learners`` learners
spread over the units (through ``projections.units.store.load_roster``, as
``lrs roster load`` does), marks ``--certified-share`` of them certified in the
civil-servant programme (rows in ``competency_certifications``, then
``recount_certified``, as after a replay), and serves the service in process
on a loopback port.  It signs in to the console and requests
``/console/units`` ``--requests`` times, reading the ``Server-Timing`` header
(the console's own time: session, credential, queries and rendering), and the
JSON ``/competency/units`` for comparison.  The target is at most 300 ms.

Writes bench/results/console-tree-<UTC time>.json with the machine's load:
PostgreSQL, the service and the client share the machine's cores.

    python bench/console_tree.py --learners 100000
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import re
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import aiohttp
from aiohttp.test_utils import TestServer

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lrs.config import Settings  # noqa: E402
from lrs.service import create_app  # noqa: E402
from lrs.runtime.embedded import ensure_database  # noqa: E402
from lrs.runtime.postgres import EmbeddedPostgres  # noqa: E402
from lrs.service import migrate  # noqa: E402
from lrs.store.pool import create_pool  # noqa: E402
from projections.units import store as units  # noqa: E402
from projections.units.roster import Membership, Roster, Unit  # noqa: E402
from bench.run_record import add_result_options, load_average, machine, write_result  # noqa: E402

PROGRAM = "https://lrs.example.org/competency/programs/civil-servant-basic-digital-skills"
VERSION = "2025.1"
KEY, SECRET = "bench", "bench-secret"
TIMING = re.compile(r"app;dur=([0-9.]+)")
INSERT_CERTIFIED = """
INSERT INTO competency_certifications (tenant, learner, program, program_version, earned, earned_at, statement_ids)
SELECT 'default', learner, $2, $3, true, now(), '{}'::uuid[] FROM unnest($1::text[]) AS learner
"""


def roster(agencies: int, per_agency: int, learners: int) -> Roster:
    ministry = Unit("moi", None, "ministry", "Bộ Nội vụ")
    made = [ministry]
    leaves = []
    for a in range(agencies):
        agency = Unit(f"moi-{a:02d}", "moi", "agency", f"Cục {a + 1}")
        made.append(agency)
        for u in range(per_agency):
            leaf = Unit(f"moi-{a:02d}-{u:03d}", agency.unit_id, "unit", f"Phòng {u + 1}, Cục {a + 1}")
            made.append(leaf)
            leaves.append(leaf.unit_id)
    since = datetime(2024, 1, 1, tzinfo=timezone.utc)
    memberships = tuple(
        Membership(f"account:https://sso.example.gov.vn|{n:07d}", leaves[n % len(leaves)], since, None)
        for n in range(learners)
    )
    return Roster(units=tuple(made), memberships=memberships)


async def prepare(database_url: str, args: argparse.Namespace) -> dict:
    # The service's pool and its 60 s statement limit: a roster load fits in it again.
    pool = await create_pool(database_url, min_size=1, max_size=4)
    try:
        await migrate(pool)
        started = time.perf_counter()
        data = roster(args.agencies, args.units, args.learners)
        await units.load_roster(pool, "default", data, now=datetime.now(timezone.utc))
        loaded = time.perf_counter() - started
        certified = [m.learner for i, m in enumerate(data.memberships) if (i * 7919) % 1000 < args.certified_share * 1000]
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute(INSERT_CERTIFIED, certified, PROGRAM, VERSION)
            await units.recount_certified(conn)
            await conn.execute("ANALYZE")
        return {"units": len(data.units), "learners": args.learners, "certified": len(certified),
                "roster_load_s": round(loaded, 1)}
    finally:
        await pool.close()


async def measure(database_url: str, args: argparse.Namespace) -> dict:
    settings = Settings(
        database_url=database_url, nats_url=None, relay_enabled=False, projections_enabled=False,
        bootstrap_credential=f"{KEY}:{SECRET}", frameworks_dir=Path(tempfile.mkdtemp(prefix="lrs-bench-fw-")),
        rate_limit_per_s=0,
    )
    app = create_app(settings, database_url=database_url, nats_url=None)
    jar = aiohttp.CookieJar(unsafe=True)
    async with TestServer(app, host="127.0.0.1") as server, aiohttp.ClientSession(cookie_jar=jar) as session:
        base = str(server.make_url("")).rstrip("/")
        page = await (await session.get(base + "/console/signin")).text()
        csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
        signed = await session.post(base + "/console/signin", data={"csrf": csrf, "key": KEY, "secret": SECRET},
                                    allow_redirects=False)
        assert signed.status == 303, await signed.text()
        params = {"program": f"{PROGRAM}|{VERSION}"}
        server_ms, round_trip_ms = [], []
        size = 0
        for _ in range(args.warmup + args.requests):
            started = time.perf_counter()
            async with session.get(base + "/console/units", params=params) as response:
                body = await response.read()
                assert response.status == 200, body[:500]
                assert b"unit-tree" in body
                elapsed = (time.perf_counter() - started) * 1000
                timing = float(TIMING.search(response.headers["Server-Timing"]).group(1))
            server_ms.append(timing)
            round_trip_ms.append(elapsed)
            size = len(body)
        server_ms, round_trip_ms = server_ms[args.warmup:], round_trip_ms[args.warmup:]
        auth = "Basic " + base64.b64encode(f"{KEY}:{SECRET}".encode()).decode()
        api_ms = []
        for _ in range(args.requests):
            started = time.perf_counter()
            async with session.get(base + "/competency/units", params={"program": PROGRAM, "version": VERSION},
                                   headers={"Authorization": auth}) as response:
                tree = await response.json()
                assert response.status == 200, tree
            api_ms.append((time.perf_counter() - started) * 1000)
        assert tree["units"][0]["headcount"] == args.learners, tree["units"][0]
    return {
        "page_bytes": size,
        "console_units_server_ms": _summary(server_ms),
        "console_units_round_trip_ms": _summary(round_trip_ms),
        "api_competency_units_round_trip_ms": _summary(api_ms),
    }


def _summary(values: list[float]) -> dict:
    ordered = sorted(values)
    return {
        "n": len(values),
        "median": round(statistics.median(values), 1),
        "p95": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 1),
        "max": round(max(values), 1),
    }


async def main_async(args: argparse.Namespace) -> dict:
    work = Path(tempfile.mkdtemp(prefix="lrs-bench-console-", dir="/tmp"))
    pg = EmbeddedPostgres(work / "pg")
    try:
        server = await pg.start()
        await ensure_database(server, "lrs")
        database_url = pg.url_for("lrs")
        load_before = load_average()
        data = await prepare(database_url, args)
        figures = await measure(database_url, args)
        return {
            "benchmark": "console unit tree",
            "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "target_ms": 300,
            "data": data,
            **figures,
            "machine": {
                **machine(load_before=load_before),
                "note": "a shared machine: PostgreSQL, the service and the client run on the same cores, "
                        "beside other work",
            },
        }
    finally:
        await pg.stop()
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--learners", type=int, default=100_000, help="rostered learners in the ministry")
    parser.add_argument("--agencies", type=int, default=20, help="agencies under the ministry")
    parser.add_argument("--units", type=int, default=25, help="units under each agency")
    parser.add_argument("--certified-share", type=float, default=0.4, help="share of learners certified")
    parser.add_argument("--requests", type=int, default=30, help="measured requests of each kind")
    parser.add_argument("--warmup", type=int, default=3, help="requests before measuring")
    add_result_options(parser, note=False)
    args = parser.parse_args(argv)
    result = asyncio.run(main_async(args))
    print(json.dumps(result, indent=2))
    if not args.no_write:
        write_result(result, "console-tree", args.label)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
