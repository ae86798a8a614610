"""Erasure's shared-attachment check: the indexed query against the scan it replaced.

An erasure deletes an attachment only when no Statement of another learner
carries it (lrs/store/erasure.py).  That question used to read every
Statement of the tenant (the payload of each, joined from events); it now
asks the ``events_attachment_hashes`` index (schemas/postgres/0063).  This
starts a private PostgreSQL, writes ``--statements`` Statements (one in
``--every`` with an attachment) through the group-commit writer, and times
both queries, alternating, ``--runs`` times each, for a hash that only the
erased learner's Statements carry (the common case: the whole answer is "no").

Writes bench/results/erasure-attachments-<branch>-<UTC time>.json with the machine's load.

    python bench/erasure_attachments.py --statements 100000
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lrs.ingest.prepare import prepare_statements  # noqa: E402
from lrs.runtime.embedded import ensure_database  # noqa: E402
from lrs.runtime.postgres import EmbeddedPostgres  # noqa: E402
from lrs.service import migrate  # noqa: E402
from lrs.store import StatementWriter  # noqa: E402
from lrs.store.erasure import shared_without  # noqa: E402
from lrs.store.pool import create_pool  # noqa: E402

from bench.run_record import add_result_options, branch, load_average, machine, write_result  # noqa: E402
AUTHORITY = {"objectType": "Agent", "mbox": "mailto:authority@example.gov.vn"}
# The query before (every Statement of the tenant, its payload searched; the
# learner's own were told apart by the read model's filter_keys then).
SELECT_SHARED_SCAN = """
SELECT 1 FROM statements s JOIN events e ON e.position = s.position
WHERE s.tenant = $1 AND position(convert_to($3, 'UTF8') IN e.payload) > 0 AND $2::text[] IS NOT NULL
LIMIT 1
"""


def statement(n: int, every: int) -> dict:
    body = {
        "id": str(uuid.uuid4()),
        "actor": {"mbox": f"mailto:cs{n % 5000}@example.gov.vn", "name": f"Learner {n % 5000}"},
        "verb": {"id": "http://adlnet.gov/expapi/verbs/completed"},
        "object": {"id": f"https://lms.example.gov.vn/courses/{n % 300}"},
        "result": {"completion": True},
    }
    if n % every == 0:
        sha2 = hashlib.sha256(str(n).encode()).hexdigest()
        body["attachments"] = [{"usageType": "http://id.tincanapi.com/attachment/certificate-of-completion",
                                "display": {"en-US": "certificate"}, "contentType": "text/plain",
                                "length": 1, "sha2": sha2}]
    return body


async def run(database_url: str, args: argparse.Namespace) -> dict:
    pool = await create_pool(database_url, min_size=1, max_size=4)
    try:
        await migrate(pool)
        writer = StatementWriter(pool, wait_ms=1.0)
        await writer.start()
        try:
            for start in range(0, args.statements, 1000):
                bodies = [statement(n, args.every) for n in range(start, min(start + 1000, args.statements))]
                await writer.append("default", prepare_statements(bodies, version="1.0.3", authority=AUTHORITY,
                                                                  new_id=uuid.uuid4, max_statements=1000))
        finally:
            await writer.close()
        await pool.execute("VACUUM ANALYZE events")
        await pool.execute("VACUUM ANALYZE statements")
        only_theirs = hashlib.sha256(b"not carried by anyone else").hexdigest()
        filter_keys = ["A:mbox:mailto:erased@example.gov.vn"]
        timings: dict[str, list[float]] = {"indexed_ms": [], "scan_ms": []}
        for _ in range(args.runs):
            started = time.perf_counter()
            async with pool.acquire() as conn, conn.transaction():
                assert not await shared_without(conn, "default", filter_keys, only_theirs)
            timings["indexed_ms"].append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            assert await pool.fetchval(SELECT_SHARED_SCAN, "default", filter_keys, only_theirs) is None
            timings["scan_ms"].append((time.perf_counter() - started) * 1000)
        return {
            **{f"{k}_median": round(statistics.median(v), 2) for k, v in timings.items()},
            **{k: [round(x, 2) for x in v] for k, v in timings.items()},
            "index_bytes": await pool.fetchval("SELECT pg_relation_size('events_attachment_hashes')"),
            "events_bytes": await pool.fetchval("SELECT pg_total_relation_size('events')"),
        }
    finally:
        await pool.close()


async def main_async(args: argparse.Namespace) -> dict:
    work = Path(tempfile.mkdtemp(prefix="lrs-bench-erasure-", dir="/tmp"))
    pg = EmbeddedPostgres(work / "pg")
    try:
        server = await pg.start()
        await ensure_database(server, "lrs")
        load_before = load_average()
        figures = await run(pg.url_for("lrs"), args)
        return {
            "benchmark": "erasure shared-attachment check",
            "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "command": "python bench/erasure_attachments.py " + " ".join(sys.argv[1:]),
            "statements": args.statements,
            "with_attachments": len(range(0, args.statements, args.every)),
            **figures,
            "machine": {
                **machine(load_before=load_before),
                "note": "a shared machine (2 cores, other engineers' tests and benchmarks beside it)",
            },
        }
    finally:
        await pg.stop()
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--statements", type=int, default=100_000, help="Statements in the tenant")
    parser.add_argument("--every", type=int, default=50, help="one Statement in this many carries an attachment")
    parser.add_argument("--runs", type=int, default=5, help="timings of each query (alternating)")
    add_result_options(parser, note=False)
    args = parser.parse_args(argv)
    result = asyncio.run(main_async(args))
    print(json.dumps(result, indent=2))
    if not args.no_write:
        write_result(result, "erasure-attachments", args.label or branch() or "unknown")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
