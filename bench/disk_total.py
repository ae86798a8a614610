"""Bytes per statement in all, through the service as it runs by default:
``lrs serve`` (embedded PostgreSQL and nats-server, the relay on, the
projections on as by default, or off with ``--projections off``) with
``LRS_SEAL_PERSONAL_DATA`` true or false, filled over HTTP (batch
100) with bench/ingest.py's ~1,050-byte statement, then measured:

* every relation of the database: heap, indexes and TOAST apart, per statement,
  after the relay caught up and ``VACUUM (ANALYZE)``;
* WAL written while filling (``pg_current_wal_lsn`` before and after), and
  ``pg_wal`` on disk after a CHECKPOINT with ``max_wal_size`` (which bounds it
  at steady state: a fixed cost, not one per statement);
* the JetStream stream: its own byte count per message, its store directory,
  its compression and retention, sampled while filling (the most it held: the
  consumers' lag) and once the relay and every projection caught up (steady
  state: with interest retention a message goes once every consumer that
  selects it acknowledged it; with the projections off no consumer selects
  any, so the stream keeps none).

``--learners N`` gives the statements N learners, each with one stable name
(statement n is learner n mod N), as a programme's learners send many
statements each; ``--learners 0`` names a new learner in every statement
(bench/ingest.py's template: the sealed side then makes a learner key per
statement, the worst case).

    python bench/disk_total.py --statements 50000 --learners 2000 --seal true
    python bench/disk_total.py --statements 50000 --learners 0 --seal false
    python bench/disk_total.py --statements 50000 --learners 2000 --seal true --projections off

Results go to bench/results/storage-disk-total[-<branch>]-<UTC time>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import asyncpg
import nats
import nats.errors

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import bench.ingest as ingest  # noqa: E402
from lrs.nats.bus import STREAM_NAME  # noqa: E402
from lrs.runtime.embedded import DATABASE_NAME  # noqa: E402
from lrs.runtime.nats import EmbeddedNats  # noqa: E402
from lrs.runtime.postgres import database_url  # noqa: E402

RESULTS_DIR = Path(__file__).resolve().parent / "results"

RELATIONS = """
SELECT c.relname,
       pg_relation_size(c.oid) AS heap,
       pg_indexes_size(c.oid) AS indexes,
       coalesce(pg_total_relation_size(nullif(c.reltoastrelid, 0)), 0) AS toast,
       pg_total_relation_size(c.oid) AS total,
       (SELECT coalesce(json_object_agg(i.relname, pg_relation_size(i.oid)), '{}')
        FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid WHERE x.indrelid = c.oid) AS each_index
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'm') AND n.nspname = 'public'
ORDER BY total DESC
"""


def learner_statement(learners: int):
    """bench/ingest.py's statement; learner n mod ``learners`` with one name, or
    (0) a new learner in every statement."""

    def statement(n: int, statement_id: str, registration: str) -> str:
        who = n % learners if learners else n
        score = n % 100
        return ingest._TEMPLATE % (statement_id, who, who, n % 40, n % 21, n % 21, score, score, 1 + n % 59,
                                   registration, n % 60)

    return statement


def directory_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def postgres_url(data_dir: Path) -> str:
    """The embedded server's database, by the socket directory its postmaster.pid names."""
    lines = (data_dir / "postgres" / "pgdata" / "postmaster.pid").read_text().splitlines()
    return database_url(Path(lines[4]), DATABASE_NAME, int(lines[3]))


async def fill(url: str, auth: str, total: int, concurrency: int) -> int:
    counter = [0]
    host, port = url.removeprefix("http://").rsplit(":", 1)

    async def client() -> None:
        conn = ingest._Connection(host, int(port), "/xapi/statements", auth)
        while counter[0] < total:
            status = await conn.post(ingest._body(min(100, total - counter[0]), counter))
            if status != 200:
                raise SystemExit(f"fill: HTTP {status}")
        conn.close()

    await asyncio.gather(*(client() for _ in range(concurrency)))
    return counter[0]


async def caught_up(conn: asyncpg.Connection, head: int, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = await conn.fetchval("SELECT max(position) FROM relay_checkpoints")
        if done is not None and done >= head:
            return
        await asyncio.sleep(0.2)
    raise SystemExit(f"the relay did not reach position {head} in {timeout} s")


async def projections_caught_up(conn: asyncpg.Connection, head: int, timeout: float = 600) -> dict[str, int]:
    """Every projection's checkpoint at the log head."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = {r["name"]: r["position"] for r in await conn.fetch("SELECT name, position FROM projection_checkpoints")}
        if rows and min(rows.values()) >= head:
            return rows
        await asyncio.sleep(0.2)
    raise SystemExit(f"the projections did not reach position {head} in {timeout} s")


class StreamSampler:
    """The stream's messages, bytes and store directory, sampled every
    ``interval`` seconds while the store fills: the most it held."""

    def __init__(self, nats_url: str, store: Path, interval: float = 0.5) -> None:
        self.nats_url, self.store, self.interval = nats_url, store, interval
        self.most = {"messages": 0, "bytes": 0, "store_dir_bytes": 0}
        self.samples = 0

    async def run(self, stop: asyncio.Event) -> None:
        nc = await nats.connect(self.nats_url)
        try:
            js = nc.jetstream()
            while not stop.is_set():
                with contextlib.suppress(nats.errors.Error, asyncio.TimeoutError):
                    state = (await js.stream_info(STREAM_NAME)).state
                    seen = {"messages": state.messages, "bytes": state.bytes,
                            "store_dir_bytes": directory_bytes(self.store)}
                    self.most = {k: max(v, seen[k]) for k, v in self.most.items()}
                    self.samples += 1
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.interval)
        finally:
            await nc.close()


async def stream_state(nats_url: str, store: Path, settle_s: float = 10.0) -> tuple:
    """The stream's info and store directory once it stopped shrinking (the
    last acknowledgements reach the stream a moment after the checkpoints),
    at most ``settle_s`` seconds."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        deadline = time.monotonic() + settle_s
        info = await js.stream_info(STREAM_NAME)
        while info.state.messages and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            info = await js.stream_info(STREAM_NAME)
        consumers = {c.name: {"num_pending": c.num_pending, "num_ack_pending": c.num_ack_pending}
                     for c in await js.consumers_info(STREAM_NAME)}
    finally:
        await nc.close()
    return info, consumers, directory_bytes(store)


async def run(args: argparse.Namespace) -> dict:
    ingest._statement = learner_statement(args.learners)
    data_dir = Path(tempfile.mkdtemp(prefix="disk-total-", dir=args.scratch))
    os.environ.update({"LRS_SEAL_PERSONAL_DATA": args.seal, "LRS_HTTP_WORKERS": "2",
                       "LRS_PROJECTIONS_ENABLED": "true" if args.projections == "on" else "false"})
    target = argparse.Namespace(start_service=True, data_dir=str(data_dir))
    load_before = [round(x, 2) for x in os.getloadavg()]
    try:
        async with ingest.bench_target(target) as (url, key, secret):
            auth = "Basic " + base64.b64encode(f"{key}:{secret}".encode()).decode()
            conn = await asyncpg.connect(postgres_url(data_dir))
            try:
                wal_before = await conn.fetchval("SELECT pg_current_wal_lsn()")
                nats_url = EmbeddedNats(data_dir / "nats").url
                sampler, stop_sampling = StreamSampler(nats_url, data_dir / "nats" / "store"), asyncio.Event()
                sampling = asyncio.create_task(sampler.run(stop_sampling))
                try:
                    sent = await fill(url, auth, args.statements, args.concurrency)
                finally:
                    stop_sampling.set()
                    await sampling
                wal_written = int(await conn.fetchval("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1)", wal_before))
                head = await conn.fetchval("SELECT position FROM log_head")
                await caught_up(conn, head)
                projections = await projections_caught_up(conn, head) if args.projections == "on" else {}
                count = await conn.fetchval("SELECT count(*) FROM statements")
                await conn.execute("VACUUM (ANALYZE)")
                rows = await conn.fetch(RELATIONS)
                database_bytes = await conn.fetchval("SELECT pg_database_size(current_database())")
                payload = await conn.fetchval("SELECT avg(length(payload)) FROM events")
                learner_keys = await conn.fetchval("SELECT count(*) FROM learner_keys")
                sealed_rows = await conn.fetchval("SELECT count(*) FROM sealed_identities") if await conn.fetchval(
                    "SELECT to_regclass('sealed_identities') IS NOT NULL") else None
                await conn.execute("CHECKPOINT")
                settings = {r["name"]: r["setting"] + (r["unit"] or "") for r in await conn.fetch(
                    "SELECT name, setting, unit FROM pg_settings WHERE name = ANY($1::text[])",
                    ["max_wal_size", "min_wal_size", "wal_compression", "checkpoint_timeout", "full_page_writes"])}
            finally:
                await conn.close()
            pg_wal = directory_bytes(data_dir / "postgres" / "pgdata" / "pg_wal")
            info, consumers, stream_dir = await stream_state(nats_url, data_dir / "nats" / "store")
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)

    def per(value: float) -> float:
        return round(value / count, 1)

    relations = {r["relname"]: {"heap": per(r["heap"]), "indexes": per(r["indexes"]), "toast": per(r["toast"]),
                                "total": per(r["total"]),
                                "each_index": {k: per(v) for k, v in json.loads(r["each_index"]).items()}}
                 for r in rows if r["total"] >= 8192 * 4}
    growing = ("events", "statements", "statement_keys", "sealed_identities", "learner_keys")
    growing_total = sum(r["total"] for r in rows if r["relname"] in growing)
    compression = getattr(info.config, "compression", None)
    stream_per_message = info.state.bytes / max(info.state.messages, 1)
    result = {
        "seal_personal_data": args.seal,
        "projections": args.projections,
        "projection_checkpoints": projections,
        "statements": count,
        "sent": sent,
        "learners": args.learners or "a new one per statement",
        "learner_keys_rows": learner_keys,
        "sealed_identities_rows": sealed_rows,
        "payload_stored_avg_bytes": round(float(payload), 1),
        "relations_bytes_per_statement": relations,
        "growing_relations_bytes_per_statement": per(growing_total),
        "whole_database_bytes_per_statement": per(database_bytes),
        "wal_written_bytes_per_statement": per(wal_written),
        "pg_wal_on_disk_bytes_after_checkpoint": pg_wal,
        "postgres_settings": settings,
        "jetstream": {
            "retention": str(getattr(info.config.retention, "value", info.config.retention)),
            "compression": str(getattr(compression, "value", compression)),
            "max_age_s": info.config.max_age,
            "last_seq": info.state.last_seq,
            "consumers": consumers,
            "while_filling_most": {**sampler.most, "samples": sampler.samples},
            "steady_state": {
                "messages": info.state.messages,
                "bytes (JetStream's count, uncompressed)": info.state.bytes,
                "bytes_per_message (JetStream's count)": round(stream_per_message, 1),
                "store_dir_bytes": stream_dir,
                "store_dir_bytes_per_statement": per(stream_dir),
            },
        },
        "total_bytes_per_statement": {
            # The stream's disk is its store directory (S2-compressed blocks);
            # JetStream's own count is the messages' raw size.
            "growing relations + stream store at steady state": per(growing_total + stream_dir),
            "whole database + stream store at steady state": per(database_bytes + stream_dir),
            "growing relations + the most the stream store held while filling":
                per(growing_total + sampler.most["store_dir_bytes"]),
        },
    }
    print(json.dumps(result, indent=1), flush=True)
    return {
        "benchmark": "storage-disk-total",
        "recorded_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": "python bench/disk_total.py " + " ".join(sys.argv[1:]),
        "load_average_before": load_before,
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "cores": os.cpu_count(),
        "note": args.note,
        "result": result,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--statements", type=int, default=50_000)
    parser.add_argument("--learners", type=int, default=2_000, help="stable learners (0: a new one per statement)")
    parser.add_argument("--seal", choices=("true", "false"), default="true", help="LRS_SEAL_PERSONAL_DATA")
    parser.add_argument("--projections", choices=("on", "off"), default="on",
                        help="LRS_PROJECTIONS_ENABLED (on: the default configuration, a consumer on the stream)")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--scratch", default=tempfile.gettempdir(), help="where the service's data dir goes")
    parser.add_argument("--branch", default="")
    parser.add_argument("--note", default="")
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args()
    record = ingest.run_stoppable(run(args), "disk_total")
    if not args.no_save:
        branch = f"-{args.branch}" if args.branch else ""
        out = RESULTS_DIR / f"storage-disk-total{branch}-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}.json"
        out.write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n")
        print(f"saved {out}")


if __name__ == "__main__":
    main()
