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
    python bench/storage.py --statements 100000 --mix ingest       # the ingest bench's ~1,050-byte statement

``--mix ingest`` stores bench/ingest.py's statement (a named learner, a
described lesson, a score, a registration, a parent activity: about 1,050
bytes once stored) instead of the cmi5 mix; the projection then has nothing
to judge, so its tables stay empty.

Besides the relations it reports what the disk holds at the end: the whole
pgdata directory and its pg_wal after a CHECKPOINT (a private server only:
WAL on disk is bounded by max_wal_size, so it is a fixed cost, not one per
statement, at steady state), and the stream's store directory.

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
from run_record import add_result_options, load_average, machine, write_result  # noqa: E402
from store_writer import with_database  # noqa: E402

from lrs.nats.bus import STREAM_NAME  # noqa: E402
from lrs.runtime.nats import EmbeddedNats  # noqa: E402
from lrs.runtime.postgres import EmbeddedPostgres  # noqa: E402


PG_SETTINGS = ("wal_compression", "max_wal_size", "min_wal_size", "checkpoint_timeout", "full_page_writes",
               "wal_level")

RELATION_SIZES = """
SELECT c.relname, pg_total_relation_size(c.oid) AS bytes
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'm') AND n.nspname = 'public'
ORDER BY bytes DESC
"""


async def stored_json_bytes(conn: asyncpg.Connection) -> int:
    """The canonical JSON's bytes, however the log stores it."""
    try:
        from lrs.payload_codec import open_payload
    except ImportError:  # a store that keeps the JSON as it is
        return int(await conn.fetchval("SELECT sum(length(payload)) FROM events"))
    total = 0
    async with conn.transaction():
        async for row in conn.cursor("SELECT payload FROM events", prefetch=5000):
            total += len(open_payload(bytes(row["payload"])))
    return total


async def checkpoint_every(url: str, statements: int) -> int:
    """CHECKPOINT whenever the log has grown by ``statements`` (until
    cancelled): a store at steady state checkpoints every checkpoint_timeout,
    and the first change of each page after a checkpoint writes the whole page
    to the WAL, which a fill shorter than one checkpoint never shows."""
    conn = await asyncpg.connect(url)
    made, last = 0, 0
    try:
        while True:
            await asyncio.sleep(0.1)
            head = await conn.fetchval("SELECT position FROM log_head") if await conn.fetchval(
                "SELECT to_regclass('log_head') IS NOT NULL") else 0
            if head - last >= statements:
                await conn.execute("CHECKPOINT")
                made, last = made + 1, head
    except asyncio.CancelledError:
        return made
    finally:
        await conn.close()


async def stop_checkpoints(task: asyncio.Future | None) -> int:
    if task is None:
        return 0
    task.cancel()
    return await task


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


def ingest_mix() -> None:
    """Store bench/ingest.py's statement instead of the cmi5 mix."""
    import ingest

    counter = [0]

    def statement(rng: random.Random, learners: int, evidence_share: float = 1.0, statement_id: str | None = None) -> str:
        n = counter[0]
        counter[0] += 1
        ids = ingest._uuid_texts(2)
        return ingest._statement(n, statement_id or ids[0], ids[1])

    projection.statement = statement


def directory_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


async def run(args: argparse.Namespace) -> dict:
    load_before = load_average()
    scratch = Path(tempfile.mkdtemp(prefix="lrs-bench-storage-", dir="/tmp"))
    pg = None
    server = args.url
    if server is None:
        pg = EmbeddedPostgres(scratch / "pg", settings=dict(setting.split("=", 1) for setting in args.pg_setting))
        server = await pg.start()
    name = f"lrs_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(server)
    await admin.execute(f'CREATE DATABASE "{name}"')
    bus = EmbeddedNats(scratch / "nats")
    try:
        url = with_database(server, name)
        wal_before = await admin.fetchval("SELECT pg_current_wal_lsn()")
        if args.mix == "ingest":
            ingest_mix()
        if args.pad_bytes:
            pad_statements(args.pad_bytes)
        checkpoints = asyncio.ensure_future(checkpoint_every(url, args.checkpoint_every)) if args.checkpoint_every else None
        try:
            count = await projection.fill_log(url, args.statements, args.learners, seed=7, void_share=0.0,
                                   evidence_share=args.evidence_share)
        finally:
            checkpoints_made = await stop_checkpoints(checkpoints)
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
            json_bytes = await stored_json_bytes(conn)
            await conn.execute("CHECKPOINT")
            settings = {r["name"]: r["setting"] for r in await conn.fetch(
                "SELECT name, setting FROM pg_settings WHERE name = ANY($1::text[])", list(PG_SETTINGS))}
        finally:
            await conn.close()
        pgdata = pg.pgdata if pg is not None else None
        nats_url = await bus.start()
        lrs({**env, "LRS_NATS_URL": nats_url}, "relay", "--until-caught-up")
        nc = await nats.connect(nats_url)
        try:
            info = await nc.jetstream().stream_info(STREAM_NAME)
            compression = getattr(info.config, "compression", None)
        finally:
            await nc.close()
        stream_bytes = directory_bytes(bus.store_dir)
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
            "mix": args.mix,
            "payload_json_bytes_per_statement": per(json_bytes),
            "payload_stored_bytes_per_statement": per(payload_bytes),
            "postgres_bytes_per_statement": {
                "events (log, with indexes)": per(sizes.get("events", 0)),
                "read model (statements and the writer's other tables)": per(sum(read_model.values())),
                "competency projection": per(sum(projection_sizes.values())),
                "whole database": per(database_bytes),
            },
            "relations_bytes": sizes,
            "wal_bytes_per_statement_while_filling": per(int(wal_bytes)),
            "checkpoints_while_filling": checkpoints_made,
            "pgdata_on_disk_bytes_per_statement": None if pgdata is None else {
                "pgdata (all)": per(directory_bytes(pgdata)),
                "pg_wal (after CHECKPOINT)": per(directory_bytes(pgdata / "pg_wal")),
            },
            "postgres_settings": settings,
            "jetstream": {
                "messages": info.state.messages,
                "compression": str(getattr(compression, "value", compression)),
                "max_age_s": info.config.max_age,
                "max_bytes": info.config.max_bytes,
                "bytes_per_message": round(info.state.bytes / max(info.state.messages, 1), 1),
                "store_dir_bytes_per_message": round(stream_bytes / max(info.state.messages, 1), 1),
            },
            "replay": replayed,
        }
        wal_on_disk = 0 if pgdata is None else directory_bytes(pgdata / "pg_wal")
        result["total_bytes_per_statement"] = {
            "database + pg_wal + stream store": per(database_bytes + wal_on_disk + stream_bytes),
            "database + stream store": per(database_bytes + stream_bytes),
        }
        print(json.dumps(result, indent=2))
        return {
            "benchmark": "storage",
            "recorded_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "command": "python " + " ".join(sys.argv),
            "machine": machine(load_before=load_before),
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
    parser.add_argument("--mix", choices=("cmi5", "ingest"), default="cmi5",
                        help="cmi5: the projection bench's session mix; ingest: bench/ingest.py's ~1,050-byte statement")
    parser.add_argument("--pad-bytes", type=int, default=0, help="make each statement about this much larger")
    parser.add_argument("--checkpoint-every", type=int, default=0, metavar="STATEMENTS",
                        help="CHECKPOINT each time the log grows by this many statements while filling (steady-state WAL)")
    parser.add_argument("--pg-setting", action="append", default=[], metavar="NAME=VALUE",
                        help="a setting of the private PostgreSQL server (repeatable), e.g. wal_compression=pglz")
    add_result_options(parser)
    parser.add_argument("--branch", dest="label", help=argparse.SUPPRESS)  # the former name of --label
    args = parser.parse_args()
    record = asyncio.run(run(args))
    if not args.no_write:
        write_result(record, "storage", args.label)


if __name__ == "__main__":
    main()
