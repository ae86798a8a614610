"""Bytes per statement in PostgreSQL, in its WAL and on JetStream (docs/scaling.md).

Fills a private PostgreSQL (or a scratch database on --url) with --statements
statements of bench/projection.py's cmi5 mix (--evidence-share of them judged
or completed, the rest the sessions' launched/initialized/experienced/
terminated statements), builds the competency projection with
``lrs replay competency``, relays the log to a private nats-server (one
replica, file storage) with ``lrs relay --until-caught-up``, then records:

* per relation group, table + indexes + TOAST after VACUUM ANALYZE, per statement:
  the event log (``events``), the read model (``statements`` and the others the
  writer fills), the projection's tables, and the whole database;
* WAL written while filling, per statement (what replication and archiving carry);
* the stream's bytes per message (JetStream's own count) and its store directory.

    python bench/storage.py --statements 100000
    python bench/storage.py --statements 100000 --pad-bytes 1000   # statements about 1 KB larger

Results go to bench/results/storage-<UTC time>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import uuid
from datetime import datetime, timezone
from pathlib import Path

import asyncpg
import nats

sys.path.insert(0, str(Path(__file__).resolve().parent))
import projection  # noqa: E402
from log_head_lock import machine  # noqa: E402
from store_writer import with_database  # noqa: E402

from lrs.nats.bus import STREAM_NAME  # noqa: E402
from lrs.runtime.nats import EmbeddedNats  # noqa: E402
from lrs.runtime.postgres import EmbeddedPostgres  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "bench" / "results"

RELATION_SIZES = """
SELECT c.relname, pg_total_relation_size(c.oid) AS bytes
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'm') AND n.nspname = 'public'
ORDER BY bytes DESC
"""


def lrs(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "lrs", *args], env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"lrs {' '.join(args)} failed: {done.stderr[-2000:]}")
    return done.stdout.strip()


def pad_statements(size: int) -> None:
    """Make every generated statement about ``size`` bytes larger: a context
    extension of random hex (as little compressible as real descriptive text
    is not, so this errs on the large side)."""
    make = projection.statement
    rng = random.Random(11)

    def padded(*args: object, **kwargs: object) -> str:
        body = json.loads(make(*args, **kwargs))
        extensions = body.setdefault("context", {}).setdefault("extensions", {})
        extensions["https://lrs.example.org/xapi/extensions/note"] = rng.randbytes(size // 2).hex()
        return json.dumps(body, separators=(",", ":"))

    projection.statement = padded


def directory_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


async def run(args: argparse.Namespace) -> dict:
    load_before = os.getloadavg()
    scratch = Path(tempfile.mkdtemp(prefix="lrs-bench-storage-", dir="/tmp"))
    pg = None
    server = args.url
    if server is None:
        pg = EmbeddedPostgres(scratch / "pg")
        server = await pg.start()
    name = f"lrs_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(server)
    await admin.execute(f'CREATE DATABASE "{name}"')
    bus = EmbeddedNats(scratch / "nats")
    try:
        url = with_database(server, name)
        wal_before = await admin.fetchval("SELECT pg_current_wal_lsn()")
        if args.pad_bytes:
            pad_statements(args.pad_bytes)
        count = await projection.fill_log(url, args.statements, args.learners, seed=7, void_share=0.0,
                               evidence_share=args.evidence_share)
        wal_bytes = await admin.fetchval("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1)", wal_before)
        env = {**os.environ, "LRS_DATABASE_URL": url, "LRS_LOG_LEVEL": "warning",
               "LRS_DATA_DIR": str(scratch / "lrs")}
        replayed = lrs(env, "replay", "competency").splitlines()[-1]
        conn = await asyncpg.connect(url)
        try:
            await conn.execute("VACUUM (ANALYZE)")
            sizes = {r["relname"]: r["bytes"] for r in await conn.fetch(RELATION_SIZES)}
            database_bytes = await conn.fetchval("SELECT pg_database_size(current_database())")
            payload_bytes = await conn.fetchval("SELECT sum(length(payload)) FROM events")
        finally:
            await conn.close()
        nats_url = await bus.start()
        lrs({**env, "LRS_NATS_URL": nats_url}, "relay", "--until-caught-up")
        nc = await nats.connect(nats_url)
        try:
            info = await nc.jetstream().stream_info(STREAM_NAME)
        finally:
            await nc.close()
        await bus.stop()
        projection_sizes = {k: v for k, v in sizes.items() if k.startswith(("competency", "projection", "unit", "learner"))}
        read_model = {k: v for k, v in sizes.items() if k != "events" and k not in projection_sizes}

        def per(value: int) -> float:
            return round(value / count, 1)

        result = {
            "statements": count,
            "evidence_share": args.evidence_share,
            "pad_bytes": args.pad_bytes,
            "learners": args.learners,
            "payload_json_bytes_per_statement": per(payload_bytes),
            "postgres_bytes_per_statement": {
                "events (log, with indexes)": per(sizes.get("events", 0)),
                "read model (statements and the writer's other tables)": per(sum(read_model.values())),
                "competency projection": per(sum(projection_sizes.values())),
                "whole database": per(database_bytes),
            },
            "relations_bytes": sizes,
            "wal_bytes_per_statement_while_filling": per(int(wal_bytes)),
            "jetstream": {
                "messages": info.state.messages,
                "bytes_per_message": round(info.state.bytes / max(info.state.messages, 1), 1),
                "store_dir_bytes_per_message": round(directory_bytes(bus.store_dir) / max(info.state.messages, 1), 1),
            },
            "replay": replayed,
        }
        print(json.dumps(result, indent=2))
        return {
            "benchmark": "storage",
            "recorded_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "command": "python " + " ".join(sys.argv),
            "machine": machine(load_before),
            "note": args.note,
            "result": result,
        }
    finally:
        await bus.stop()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
        if pg is not None:
            await pg.stop()
        shutil.rmtree(scratch, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="PostgreSQL server URL (a scratch database is created); default: a private server")
    parser.add_argument("--statements", type=int, default=100_000)
    parser.add_argument("--learners", type=int, default=20_000)
    parser.add_argument("--evidence-share", type=float, default=0.33)
    parser.add_argument("--pad-bytes", type=int, default=0, help="make each statement about this much larger")
    parser.add_argument("--note", default="")
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args()
    record = asyncio.run(run(args))
    if not args.no_save:
        out = RESULTS_DIR / f"storage-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}.json"
        out.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n")
        print(f"saved {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
