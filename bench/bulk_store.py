"""A large store, built quickly through the LRS's own write path.

Generates realistic statements (cmi5-like sessions of many learners over many
courses, with registrations, context activities, instructors, StatementRefs
and voiding statements), validates them as a POST body is validated
(:func:`lrs.xapi.statement.parse_statements`, one batch in
``--validate-every``), prepares them as the HTTP
handler does and appends them with the group-commit
:class:`lrs.store.StatementWriter`: the events carry a valid hash chain and
the read model is the one ingest writes.  Only HTTP is skipped.

The store lives in an embedded PostgreSQL under ``--data`` and survives the
run: run again with a larger ``--statements`` to grow it (1 M, then 3 M, then
10 M), since statement ``n`` is always the same (ids are UUIDv5 of ``n``).
``--verify`` then runs ``lrs audit verify`` (the hash chain) against the
store and checks the read model against what the generator wrote.

    nice -n 10 .venv/bin/python bench/bulk_store.py --data /work/benchdata/store --statements 1000000 --verify
    nice -n 10 .venv/bin/python bench/bulk_store.py --data /work/benchdata/store --statements 3000000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import AsyncIterator

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lrs.ingest.prepare import prepare_statements  # noqa: E402
from lrs.runtime.embedded import ensure_database  # noqa: E402
from lrs.runtime.postgres import EmbeddedPostgres  # noqa: E402
from lrs.store import StatementWriter, create_pool  # noqa: E402
from lrs.service import migrate  # noqa: E402
from lrs.store.ids import RandomUuids  # noqa: E402
from lrs.xapi.statement import parse_statements  # noqa: E402

NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:lrs:bench:bulk-store")
TENANT = "default"
DATABASE = "lrs"
AUTHORITY = {"objectType": "Agent", "name": "bulk", "account": {"homePage": "https://lrs.example.gov", "name": "bulk"}}
SITE = "https://learn.example.gov"
# The shape of the national store: many learners, a long tail of courses.
LEARNERS = 200_000
COURSES = 300
UNITS_PER_COURSE = 20
INSTRUCTORS = 800
PROGRAMMES = 12
VERB = "http://adlnet.gov/expapi/verbs/"
SESSION = ("launched", "initialized", "answered", "answered", "progressed", None, "terminated")
# one statement in this many refers to an earlier one (commented), one in VOID_EVERY voids one
REF_EVERY = 503
VOID_EVERY = 2003
VOID_DISTANCE = 997
START = datetime(2026, 1, 5, 7, 0, tzinfo=timezone.utc)


def _unit(x: int) -> float:
    """A fixed pseudo-random number in [0, 1) for ``x`` (splitmix64; a seeded
    random.Random per draw cost more than the rest of a statement)."""
    z = (x * 0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return (z ^ (z >> 31)) / 18446744073709551616.0


def statement_id(n: int) -> str:
    return str(uuid.uuid5(NAMESPACE, str(n)))


def registration(session: int) -> str:
    return str(uuid.uuid5(NAMESPACE, f"r{session}"))


def learner_of(session: int) -> int:
    """Learners are unevenly active: a few take many sessions, most a few."""
    r = _unit(session * 2 + 1)
    return int(LEARNERS * r * r)


def learner(number: int) -> dict:
    if number % 3 == 0:
        return {"objectType": "Agent", "name": f"Learner {number}",
                "account": {"homePage": SITE, "name": f"u{number}"}}
    return {"objectType": "Agent", "name": f"Learner {number}", "mbox": f"mailto:learner{number}@agency{number % 40}.example.gov"}


def instructor(number: int) -> dict:
    return {"objectType": "Agent", "name": f"Instructor {number}", "mbox": f"mailto:teacher{number}@example.gov"}


def course_of(session: int) -> int:
    r = _unit(session * 2)
    return int(COURSES * r * r * r)  # a long tail


def unit_iri(course: int, unit: int) -> str:
    return f"{SITE}/courses/c{course}/units/u{unit}"


def course_iri(course: int) -> str:
    return f"{SITE}/courses/c{course}"


def programme_iri(course: int) -> str:
    return f"{SITE}/programmes/p{course % PROGRAMMES}"


def statement(n: int) -> dict:
    """Statement number ``n`` (0-based); always the same."""
    session, step = divmod(n, len(SESSION))
    who = learner_of(session)
    course = course_of(session)
    unit = session % UNITS_PER_COURSE
    timestamp = START + timedelta(seconds=n * 3)
    body: dict = {"id": statement_id(n), "actor": learner(who),
                  "timestamp": timestamp.strftime("%Y-%m-%dT%H:%M:%SZ")}
    if n % VOID_EVERY == VOID_EVERY - 1 and n >= VOID_DISTANCE:
        target = n - VOID_DISTANCE
        if target % VOID_EVERY != VOID_EVERY - 1:
            body["actor"] = AUTHORITY
            body["verb"] = {"id": VERB + "voided", "display": {"en-US": "voided"}}
            body["object"] = {"objectType": "StatementRef", "id": statement_id(target)}
            return body
    if n % REF_EVERY == REF_EVERY - 1 and n > 100:
        body["verb"] = {"id": "http://adlnet.gov/expapi/verbs/commented", "display": {"en-US": "commented"}}
        body["object"] = {"objectType": "StatementRef", "id": statement_id(n - 50)}
        body["result"] = {"response": "Xem lại bài này"}
        return body
    verb = SESSION[step]
    if verb is None:
        verb = "passed" if _unit(-n - 1) < 0.7 else "failed"
    body["verb"] = {"id": VERB + verb, "display": {"en-US": verb}}
    body["object"] = {
        "objectType": "Activity", "id": unit_iri(course, unit),
        "definition": {"name": {"vi-VN": f"Bài {unit}", "en-US": f"Unit {unit}"},
                       "type": "http://adlnet.gov/expapi/activities/lesson"},
    }
    context: dict = {
        "registration": registration(session), "platform": "bench", "language": "vi-VN",
        "contextActivities": {
            "parent": [{"id": course_iri(course)}],
            "grouping": [{"id": programme_iri(course)}],
            "category": [{"id": "https://w3id.org/xapi/cmi5/context/categories/moveon"}],
        },
    }
    if session % 10 == 0:
        context["instructor"] = instructor(session % INSTRUCTORS)
    body["context"] = context
    if verb in ("passed", "failed", "answered"):
        score = 20 + int(_unit(-n - 10**12) * 81)
        body["result"] = {"score": {"scaled": score / 100, "raw": score, "min": 0, "max": 100},
                          "success": verb != "failed", "completion": verb == "passed", "duration": "PT12M30S"}
    return body


async def _count(pool) -> int:  # type: ignore[no-untyped-def]
    return int(await pool.fetchval("SELECT position FROM log_head WHERE singleton"))


async def load_part(url: str, args: argparse.Namespace, first: int, part: int, parts: int) -> float:
    """Append statements ``first`` .. ``args.statements - 1``: the batches
    ``k`` with ``k % parts == part`` (other processes write the rest through
    their own writers on the same log, as the HTTP workers do).  Returns the
    process CPU seconds spent."""
    pool = await create_pool(url, min_size=2, max_size=4)
    writer = StatementWriter(pool, wait_ms=5.0, max_statements=args.group, shared_log=parts > 1)
    await writer.start()
    new_id = RandomUuids()
    cpu_started = time.process_time()
    in_flight: set[asyncio.Task] = set()

    async def one(start: int, count: int) -> None:
        statements = [statement(n) for n in range(start, start + count)]
        if (start // args.batch) % args.validate_every == 0:
            # a sample of the batches is validated as a POST body is (all of them: 86 us a statement)
            statements = parse_statements(json.dumps(statements).encode(), "1.0.3")
        prepared = prepare_statements(statements, version="1.0.3", authority=AUTHORITY, new_id=new_id)
        results = await writer.append(TENANT, prepared)
        if len(results) != count:
            raise RuntimeError(f"{count} sent, {len(results)} answered")

    try:
        started = last_report = time.perf_counter()
        for k, start in enumerate(range(first, args.statements, args.batch)):
            if k % parts != part:
                continue
            # A bounded number in flight keeps the group commit fed.
            task = asyncio.ensure_future(one(start, min(args.batch, args.statements - start)))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
            if len(in_flight) >= args.in_flight:
                done, _ = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                for d in done:
                    d.result()
            now = time.perf_counter()
            if part == 0 and now - last_report > 30:
                last_report = now
                print(f"{start:,} statements queued, {(start - first) / (now - started):,.0f}/s",
                      file=sys.stderr, flush=True)
        for d in await asyncio.gather(*in_flight, return_exceptions=True):
            if isinstance(d, BaseException):
                raise d
    finally:
        await writer.close()
        await pool.close()
    return time.process_time() - cpu_started


def server_cpu_s(pid: int | None) -> float:
    """CPU seconds of the PostgreSQL server: the postmaster, its live
    children, and (cutime, cstime) the children it has reaped."""
    if pid is None:
        return 0.0
    tick = os.sysconf("SC_CLK_TCK")

    def times(p: int, reaped: bool) -> float:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return sum(int(x) for x in fields[11:15 if reaped else 13]) / tick

    total = times(pid, True)
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        total += times(int(child), False)
    return total


async def load(url: str, args: argparse.Namespace, server_pid: int | None = None) -> dict:
    await migrate(url)
    pool = await create_pool(url, min_size=1, max_size=2)
    # Statements are numbered from 0; the log holds the first `have` of them
    # (voiding statements included: each is one event).
    have = await _count(pool)
    started = time.perf_counter()
    server_cpu = server_cpu_s(server_pid)
    children = [
        await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--data", str(args.data), "--statements", str(args.statements),
            "--batch", str(args.batch), "--in-flight", str(args.in_flight), "--group", str(args.group),
            "--validate-every", str(args.validate_every), "--part", f"{i}/{args.processes}/{have}", "--url", url,
            stdout=asyncio.subprocess.PIPE)
        for i in range(args.processes)
    ]
    cpu = 0.0
    for child in children:
        out, _ = await child.communicate()
        if child.returncode != 0:
            raise RuntimeError(f"a loader process failed (exit status {child.returncode})")
        cpu += float(out.decode().strip().splitlines()[-1])
    seconds = time.perf_counter() - started
    server_cpu = server_cpu_s(server_pid) - server_cpu
    total = await _count(pool)
    analyze_s = 0.0
    if args.analyze:
        t0 = time.perf_counter()
        await pool.execute("ANALYZE statements")
        await pool.execute("ANALYZE events")
        analyze_s = time.perf_counter() - t0
    sizes = dict(await pool.fetchrow(
        "SELECT pg_total_relation_size('events') AS events, pg_total_relation_size('statements') AS statements,"
        " pg_database_size(current_database()) AS database"))
    await pool.close()
    return {"statements_before": have, "statements_after": total, "seconds": round(seconds, 1),
            "statements_per_s": round((total - have) / seconds) if seconds else None,
            "loader_processes": args.processes,
            "loader_cpu_us_per_statement": round(cpu / max(1, total - have) * 1e6, 1),
            "postgres_cpu_us_per_statement": round(server_cpu / max(1, total - have) * 1e6, 1),
            "analyze_s": round(analyze_s, 1), "bytes": sizes}


async def verify(url: str) -> dict:
    """``lrs audit verify`` on the store, and the read model against the generator."""
    t0 = time.perf_counter()
    env = dict(os.environ, LRS_DATABASE_URL=url)
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "lrs", "audit", "verify", env=env, cwd=ROOT,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await proc.communicate()
    chain = {"exit_status": proc.returncode, "output": out.decode(errors="replace").strip()[-300:],
             "seconds": round(time.perf_counter() - t0, 1)}
    conn = await asyncpg.connect(url)
    try:
        events, rows, voided, voiders, refs = await conn.fetchrow(
            "SELECT (SELECT count(*) FROM events), count(*), count(*) FILTER (WHERE voided),"
            " count(*) FILTER (WHERE voids IS NOT NULL), count(*) FILTER (WHERE statement_ref IS NOT NULL)"
            " FROM statements")
        total = int(await conn.fetchval("SELECT position FROM log_head"))
        # the voiding statements and every statement of learner 7, as the generator wrote them
        expected_voiders = mine = 0
        for n in range(total):
            s = statement(n)
            expected_voiders += s["verb"]["id"] == VERB + "voided"
            mine += s["actor"] == learner(7)
        keyed = await conn.fetchval(
            "SELECT count(*) FROM statement_keys WHERE key = statement_key($1, $2)", TENANT,
            "A:mbox:mailto:learner7@agency7.example.gov")
    finally:
        await conn.close()
    problems = []
    if events != rows or events != total:
        problems.append(f"{events} events, {rows} read-model rows, head {total}")
    if voided != voiders or voiders != expected_voiders:
        problems.append(f"{voided} voided, {voiders} voiding, {expected_voiders} written")
    if keyed != mine:
        problems.append(f"learner 7: {keyed} rows keyed, {mine} written")
    return {"chain": chain, "events": events, "voided": voided, "statement_refs": refs,
            "read_model_problems": problems}


def server(data: Path) -> EmbeddedPostgres:
    # Settings of a production server with a few GB of memory to spare; the
    # service's own pool keeps synchronous_commit on.
    return EmbeddedPostgres(data / "pg", settings={"shared_buffers": "512MB", "max_wal_size": "2GB",
                                                   "checkpoint_timeout": "15min"})


@contextlib.asynccontextmanager
async def store_database(data: Path) -> AsyncIterator[str]:
    """The URL of a store's database (made by this bench in ``data``), its
    PostgreSQL running for the length of the block."""
    pg = server(data)
    await pg.start()
    try:
        await ensure_database(pg.url, DATABASE)
        yield pg.url_for(DATABASE)
    finally:
        await pg.stop()


async def _sizes(url: str) -> dict[str, int]:
    conn = await asyncpg.connect(url)
    try:
        return dict(await conn.fetchrow(
            "SELECT pg_total_relation_size('events') AS events, pg_total_relation_size('statements') AS statements,"
            " pg_total_relation_size('statement_keys') AS statement_keys,"
            " pg_database_size(current_database()) AS database"))
    finally:
        await conn.close()


async def main_async(args: argparse.Namespace) -> None:
    pg = server(args.data)
    await pg.start()
    try:
        await ensure_database(pg.url, DATABASE)
        if args.copy:
            import bulk_copy

            await migrate(pg.url_for(DATABASE))
            t0 = time.perf_counter()
            result = await bulk_copy.load(pg.url_for(DATABASE), args.statements, args.processes)
            result["seconds"] = round(time.perf_counter() - t0, 1)
            result["mode"] = "copy"
            result["bytes"] = await _sizes(pg.url_for(DATABASE))
        else:
            result = await load(pg.url_for(DATABASE), args, pg.pid)
        if args.verify:
            result["verify"] = await verify(pg.url_for(DATABASE))
    finally:
        await pg.stop()
    result.update({"benchmark": "bulk store", "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                   "data": str(args.data), "loadavg_after": [round(x, 2) for x in os.getloadavg()]})
    print(json.dumps(result))
    if args.copy:
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        out = ROOT / "bench" / "results" / f"bulk-store-copy-{args.label}{args.statements // 1000}k-{stamp}.json"
        out.write_text(json.dumps(result, indent=1) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="directory of the store (kept)")
    parser.add_argument("--statements", type=int, default=1_000_000, help="grow the store to this many events")
    parser.add_argument("--batch", type=int, default=500, help="statements per append (as one POST)")
    parser.add_argument("--in-flight", type=int, default=8, help="appends queued at once")
    parser.add_argument("--group", type=int, default=5000, help="the writer's max statements per commit")
    parser.add_argument("--validate-every", type=int, default=50,
                        help="validate one batch in this many as a POST body (1: all)")
    parser.add_argument("--analyze", action="store_true", help="ANALYZE the tables after the load")
    parser.add_argument("--verify", action="store_true",
                        help="then run `lrs audit verify` on the store and check its read model")
    parser.add_argument("--processes", type=int, default=2, help="loader processes (default: 2)")
    parser.add_argument("--copy", action="store_true",
                        help="build the writer's rows here and COPY them, indexes built after the load"
                             " (bench/bulk_copy.py), instead of appending through the writer")
    parser.add_argument("--label", default="", help="words for the --copy result file name (e.g. a branch and a dash)")
    parser.add_argument("--part", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.part:  # one loader process of a load
        part, parts, first = (int(x) for x in args.part.split("/"))
        print(asyncio.run(load_part(args.url, args, first, part, parts)))
        return 0
    args.data.mkdir(parents=True, exist_ok=True)
    asyncio.run(main_async(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
