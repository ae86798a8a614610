"""Cost growth: how CPU, bytes, query latency, replay and ``as_of`` time grow with one store.

Starts PostgreSQL and nats-server (lrs.runtime, the service's embedded
settings) under ``--data`` and ``lrs serve`` on them (``--workers`` HTTP
workers, relay on, projection off), loads a roster of ``--evidence-learners``
learners in one ministry of 40 agencies, then grows the store through
``POST /xapi/statements`` (the ingest bench's keep-alive client, batches of
``--batch`` from ``--concurrency`` clients) to each of ``--sizes`` events.
The statements are the query bench's (bench/bulk_store.py: cmi5-like sessions
of 200,000 learners, StatementRefs, voidings); one request in
``1 / --evidence-share`` is instead a batch of the projection bench's cmi5
programme mix for the rostered learners, so that the competency answers have
evidence that grows with the store.

At each size, in this order:

* **ingest CPU per statement**: the CPU of the service's processes (``lrs
  serve`` and its workers, PostgreSQL with every backend, nats-server) over the
  last ``--window`` statements before the size, whose bodies are built before
  the clock starts; the load generator's own CPU is recorded apart;
* **bytes per statement**, after the relay has caught up and ``VACUUM
  (ANALYZE)`` (bench/projection.py's ``settle``): tables and indexes
  (bench/storage.py's query), the whole database, the PostgreSQL directory and
  its WAL, the JetStream stream (its own count and its store directory);
* **query latency**: bench/queries.py's filters (``--filters``), limit-100
  pages, sequential and over ``--clients`` clients;
* **replay**: ``lrs replay``'s work in a fresh process (bench/projection.py's
  ``replay_in_own_process``): seconds and events/s for the whole log;
* **as_of time**: ``GET /competency/units/{ministry}/summary?as_of=...`` on
  both clocks (``known`` counts from the certifications' ``known_at``,
  projections/competency/known_clock.py; ``achieved`` reads the kept per-day
  counts), and the present-time summary.  ``bench/as_of_known.py`` compares
  the known clock with folding the log again on a store kept with ``--keep``.

The result goes to bench/results/growth-<label>-<UTC time>.json; ``--table
FILE...`` prints result files as the Markdown table of bench/README.md.

    nice -n 10 .venv/bin/python bench/growth.py --data /work/benchdata/growth --sizes 100000,300000,1000000
    .venv/bin/python bench/growth.py --table bench/results/growth-main-*.json
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import aiohttp
import asyncpg
import nats
from tqdm import tqdm

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import bulk_store as gen  # noqa: E402  (the query bench's statements)
import projection  # noqa: E402
import queries  # noqa: E402
import storage  # noqa: E402
from process_cpu import tree_cpu_s  # noqa: E402
from run_record import add_result_options, load_average, machine, write_result  # noqa: E402
from ingest import _Connection, _free_port, _wait_ready  # noqa: E402
from lrs.nats.bus import STREAM_NAME  # noqa: E402
from lrs.runtime.embedded import ensure_database  # noqa: E402
from lrs.runtime.nats import EmbeddedNats  # noqa: E402
from lrs.runtime.postgres import EmbeddedPostgres  # noqa: E402
from lrs.store.pool import create_pool  # noqa: E402
from lrs.xapi.identity import ifi_key  # noqa: E402
from projections.units import store as units  # noqa: E402
from projections.units.roster import Membership, Roster, Unit  # noqa: E402

KEY, SECRET = "bench-growth", "bench-growth-secret"
AUTHORIZATION = "Basic " + base64.b64encode(f"{KEY}:{SECRET}".encode()).decode()
MINISTRY = "growth-ministry"
AGENCIES = 40  # the projection bench's learners are cs<n>@agency<n % 40>
DEFAULT_FILTERS = "none,agent,verb,activity,activity_related,registration,since_until"
CHUNK = 20_000  # statements whose bodies are built before they are sent


def roster(learners: int) -> Roster:
    """The projection bench's learners ``cs<n>``, each in the agency its address names."""
    made = [Unit(MINISTRY, None, "ministry", "Ministry")]
    made += [Unit(f"{MINISTRY}-{a:02d}", MINISTRY, "agency", f"Agency {a}") for a in range(AGENCIES)]
    since = datetime(2024, 1, 1, tzinfo=timezone.utc)
    memberships = []
    for n in range(learners):
        actor = {"objectType": "Agent", "mbox": f"mailto:cs{n}@agency{n % AGENCIES}.example.gov.vn"}
        memberships.append(Membership(ifi_key(actor), f"{MINISTRY}-{n % AGENCIES:02d}", since, None))  # type: ignore[arg-type]
    return Roster(units=tuple(made), memberships=tuple(memberships))


class Feed:
    """Request bodies in order: the query bench's statements numbered from 0
    and, every ``evidence_every``-th request, a batch of programme evidence."""

    def __init__(self, batch: int, evidence_every: int, learners: int) -> None:
        self.batch, self.evidence_every, self.learners = batch, evidence_every, learners
        self.next_n = 0  # the next query-bench statement
        self.requests = 0
        self.evidence = 0  # evidence statements sent
        self.rng = random.Random(7)

    def bodies(self, statements: int) -> list[tuple[int, bytes]]:
        """(statements, body) of requests of ``statements`` statements in all."""
        out = []
        while statements > 0:
            count = min(self.batch, statements)
            self.requests += 1
            if self.evidence_every and self.requests % self.evidence_every == 0:
                texts = [projection.statement(self.rng, self.learners, 0.33) for _ in range(count)]
                self.evidence += count
            else:
                texts = [json.dumps(gen.statement(n), separators=(",", ":")) for n in range(self.next_n, self.next_n + count)]
                self.next_n += count
            out.append((count, ("[" + ",".join(texts) + "]").encode()))
            statements -= count
        return out


async def post_all(url: str, bodies: list[tuple[int, bytes]], concurrency: int, bar: tqdm, retried: list[int]) -> None:
    """POST every body (a 503 is sent again after its Retry-After, counted in
    ``retried[0]``); anything but 200 stops the bench."""
    host, port = url.split("//", 1)[1].split(":")
    queue = list(reversed(bodies))

    async def client() -> None:
        conn = _Connection(host, int(port), "/xapi/statements", AUTHORIZATION)
        try:
            while queue:
                count, body = queue.pop()
                while (status := await conn.post(body)) == 503:
                    retried[0] += 1
                    await asyncio.sleep(conn.retry_after or 0.5)
                if status != 200:
                    raise SystemExit(f"growth: POST /xapi/statements answered {status}")
                bar.update(count)
        finally:
            conn.close()

    await asyncio.gather(*(client() for _ in range(concurrency)))


def service_cpu_s(pids: dict[str, int | None]) -> dict[str, float]:
    """CPU seconds so far of each named process with the processes below it,
    those that have ended included (bench/process_cpu.py)."""
    return {name: tree_cpu_s(pid, ended=True) if pid else 0.0 for name, pid in pids.items()}


async def head_and_relayed(conn: asyncpg.Connection) -> tuple[int, int]:
    row = await conn.fetchrow("SELECT (SELECT position FROM log_head) AS head, "
                              "(SELECT max(position) FROM relay_checkpoints) AS relayed")
    return int(row["head"] or 0), int(row["relayed"] or 0)


async def wait_relayed(conn: asyncpg.Connection, timeout: float = 600) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        head, relayed = await head_and_relayed(conn)
        if relayed >= head:
            return round(time.monotonic() - started, 1)
        await asyncio.sleep(0.2)
    raise SystemExit("growth: the relay did not catch up")


async def measure_bytes(database_url: str, pg: EmbeddedPostgres, bus: EmbeddedNats, events: int) -> dict[str, Any]:
    await projection.settle(database_url)
    conn = await asyncpg.connect(database_url)
    try:
        relations = {r["relname"]: r["bytes"] for r in await conn.fetch(storage.RELATION_SIZES)}
        database = await conn.fetchval("SELECT pg_database_size(current_database())")
    finally:
        await conn.close()
    nc = await nats.connect(bus.url)
    try:
        info = await nc.jetstream().stream_info(STREAM_NAME)
    finally:
        await nc.close()
    pgdata = storage.directory_bytes(pg.pgdata)
    wal = storage.directory_bytes(pg.pgdata / "pg_wal")

    def per(value: float) -> float:
        return round(value / events, 1)

    per_statement = {
        "events table": per(relations.get("events", 0)),
        "statements read model": per(relations.get("statements", 0)),
        "whole database": per(database),
        "pgdata (with WAL)": per(pgdata),
        "WAL": per(wal),
        "JetStream (stream bytes)": per(info.state.bytes),
        "JetStream (store dir)": per(storage.directory_bytes(bus.store_dir)),
    }
    per_statement["in all (pgdata + JetStream dir)"] = round(
        per_statement["pgdata (with WAL)"] + per_statement["JetStream (store dir)"], 1)
    return {"per_statement": per_statement, "relations_bytes": relations, "stream_messages": info.state.messages}


async def measure_as_of(url: str, runs: int) -> dict[str, Any]:
    """p50 and max ms of the ministry's summary now, and as of now on both clocks."""
    moment = datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
    variants = {"present": {}, "as_of_known": {"as_of": moment, "clock": "known"},
                "as_of_achieved": {"as_of": moment, "clock": "achieved"}}
    out: dict[str, Any] = {}
    async with aiohttp.ClientSession(headers={"Authorization": AUTHORIZATION}) as session:
        for name, params in variants.items():
            seconds, answer = [], None
            for i in range(runs + 1):  # one warm-up
                started = time.perf_counter()
                async with session.get(f"{url}/competency/units/{MINISTRY}/summary",
                                       params={**params, "stale": "ok"}) as response:
                    answer = await response.json()
                    if response.status != 200:
                        raise SystemExit(f"growth: summary {name} answered {response.status}: {answer}")
                if i:
                    seconds.append(time.perf_counter() - started)
            out[name] = {"p50_ms": round(statistics.median(seconds) * 1000, 1), "max_ms": round(max(seconds) * 1000, 1),
                         "headcount": answer["headcount"], "certified": answer["certified"]}
    return out


async def grow(args: argparse.Namespace) -> dict[str, Any]:
    pg = EmbeddedPostgres(args.data / "postgres")
    bus = EmbeddedNats(args.data / "nats")
    server = await pg.start()
    await ensure_database(server, gen.DATABASE)
    database_url = pg.url_for(gen.DATABASE)
    nats_url = await bus.start()
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "LRS_DATABASE_URL": database_url, "LRS_NATS_URL": nats_url, "LRS_HTTP_PORT": str(port),
           "LRS_DATA_DIR": str(args.data / "lrs"), "LRS_BOOTSTRAP_CREDENTIAL": f"{KEY}:{SECRET}",
           "LRS_LOG_LEVEL": "warning", "LRS_PROJECTIONS_ENABLED": "false", "LRS_HTTP_WORKERS": str(args.workers)}
    service = subprocess.Popen([sys.executable, "-m", "lrs", "serve"], env=env)
    sizes: list[dict[str, Any]] = []
    try:
        await _wait_ready(url, service)
        pool = await create_pool(database_url, min_size=1, max_size=2)
        await units.load_roster(pool, gen.TENANT, roster(args.evidence_learners), now=datetime.now(timezone.utc))
        await pool.close()
        conn = await asyncpg.connect(database_url)
        feed = Feed(args.batch, round(1 / args.evidence_share) if args.evidence_share else 0, args.evidence_learners)
        pids = {"lrs serve": service.pid, "postgresql": pg.pid, "nats-server": bus.pid}
        retried = [0]  # 503 answers, each sent again
        bar = tqdm(total=args.sizes[-1], unit="statement", unit_scale=True, mininterval=5, file=sys.stderr)
        for size in args.sizes:
            head, _ = await head_and_relayed(conn)
            bar.n = head
            bar.set_postfix_str(f"growing to {size:,}")
            while head < size - args.window:
                await post_all(url, feed.bodies(min(CHUNK, size - args.window - head)), args.concurrency, bar, retried)
                head, _ = await head_and_relayed(conn)
            load_before = load_average()
            bodies = feed.bodies(size - head)
            cpu_before, own_before, started = service_cpu_s(pids), time.process_time(), time.perf_counter()
            await post_all(url, bodies, args.concurrency, bar, retried)
            seconds = time.perf_counter() - started
            cpu = {k: v - cpu_before[k] for k, v in service_cpu_s(pids).items()}
            own = time.process_time() - own_before
            events, _ = await head_and_relayed(conn)
            window = events - head
            step: dict[str, Any] = {
                "events": events, "retried_503_so_far": retried[0],
                "query_bench_statements": feed.next_n, "evidence_statements": feed.evidence,
                "ingest": {"window_statements": window, "seconds": round(seconds, 1),
                           "statements_per_s": round(window / seconds),
                           "cpu_us_per_statement": round(sum(cpu.values()) / window * 1e6, 1),
                           "cpu_us_per_statement_by_process": {k: round(v / window * 1e6, 1) for k, v in cpu.items()},
                           "load_generator_cpu_us_per_statement": round(own / window * 1e6, 1),
                           "loadavg_before": load_before, "loadavg_after": load_average()},
            }
            bar.set_postfix_str(f"{size:,}: relay, bytes")
            step["relay_catch_up_s"] = await wait_relayed(conn)
            step["bytes"] = await measure_bytes(database_url, pg, bus, events)
            bar.set_postfix_str(f"{size:,}: queries")
            measured = await queries.run(database_url, argparse.Namespace(
                queries=args.queries, clients=args.clients, page=5, only=args.filters, explain=False, buffers=False))
            step["queries"] = {"filters": measured["filters"], "statistics": measured["statistics"]}
            bar.set_postfix_str(f"{size:,}: replay")
            step["replay"] = await asyncio.to_thread(projection.replay_in_own_process, database_url, args.replay_batch)
            bar.set_postfix_str(f"{size:,}: as_of")
            step["as_of"] = await measure_as_of(url, args.as_of_runs)
            step["loadavg_after"] = load_average()
            sizes.append(step)
            tqdm.write(summary_line(step), file=sys.stderr)
        bar.close()
        await conn.close()
    finally:
        service.terminate()
        service.wait(60)
        await bus.stop()
        await pg.stop()
    return {"sizes": sizes}


def summary_line(step: dict[str, Any]) -> str:
    q = step["queries"]["filters"]
    worst = max((f["sequential"]["p99_ms"] for f in q.values()), default=float("nan"))
    return (f"{step['events']:>10,} events: {step['ingest']['cpu_us_per_statement']:.0f} µs CPU/statement, "
            f"{step['bytes']['per_statement']['in all (pgdata + JetStream dir)']:,.0f} bytes/statement, "
            f"worst query p99 {worst:.1f} ms, replay {step['replay']['seconds']:.1f} s "
            f"({step['replay']['events_per_s']:,.0f}/s), as_of known p50 {step['as_of']['as_of_known']['p50_ms']} ms")


def _clients(filters: dict[str, Any]) -> dict[str, Any]:
    return next(v for k, v in filters.items() if k.startswith("clients_"))


def _measures(first: dict[str, Any]) -> list[tuple[str, Callable[[dict[str, Any]], str]]]:
    """(row name, cell of one size) for every measure the first size of a result has."""
    rows: list[tuple[str, Callable[[dict[str, Any]], str]]] = [
        ("ingest CPU µs/statement, all processes", lambda s: f"{s['ingest']['cpu_us_per_statement']:.0f}")]
    for proc in first["ingest"]["cpu_us_per_statement_by_process"]:
        rows.append((f"&nbsp;&nbsp;of which {proc}",
                     lambda s, p=proc: f"{s['ingest']['cpu_us_per_statement_by_process'][p]:.0f}"))
    rows.append(("ingest statements/s in the window", lambda s: f"{s['ingest']['statements_per_s']:,}"))
    for part in first["bytes"]["per_statement"]:
        rows.append((f"bytes/statement: {part}", lambda s, p=part: f"{s['bytes']['per_statement'][p]:,.0f}"))
    for name in first["queries"]["filters"]:
        rows.append((f"query `{name}`, sequential p50 / p99 ms",
                     lambda s, n=name: "{p50_ms} / {p99_ms}".format(**s["queries"]["filters"][n]["sequential"])))
        rows.append((f"query `{name}`, concurrent p50 / p99 ms",
                     lambda s, n=name: "{p50_ms} / {p99_ms}".format(**_clients(s["queries"]["filters"][n]))))
    rows.append(("replay seconds (events/s)",
                 lambda s: f"{s['replay']['seconds']:.1f} ({s['replay']['events_per_s']:,.0f}/s)"))
    for name in first["as_of"]:
        rows.append((f"summary `{name}` p50 ms", lambda s, n=name: f"{s['as_of'][n]['p50_ms']}"))
    rows.append(("load average (1 min) in the ingest window",
                 lambda s: f"{s['ingest']['loadavg_before'][0]}–{s['ingest']['loadavg_after'][0]}"))
    return rows


def tables(records: list[dict[str, Any]]) -> str:
    """Results as Markdown: one row per measure, one column per size of the
    first result; with several results (runs to compare) a cell holds each
    run's figure in order, separated by " · "."""
    steps = records[0]["sizes"]
    head = "| measure | " + " | ".join(f"{s['events']:,} events" for s in steps) + " |"
    rule = "|---|" + "---|" * len(steps)
    rows = []
    for name, cell in _measures(steps[0]):
        cells = [" · ".join(cell(r["sizes"][i]) for r in records if i < len(r["sizes"])) for i in range(len(steps))]
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join([head, rule, *rows])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] + "\n\n" + __doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, help="directory for the store (must not exist; removed at the end "
                        "unless --keep)")
    parser.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")], default=[100_000, 300_000, 1_000_000],
                        help="comma-separated store sizes in events, ascending (default: 100000,300000,1000000)")
    parser.add_argument("--window", type=int, default=50_000,
                        help="statements whose ingest CPU is measured, the last before each size (default: 50000)")
    parser.add_argument("--batch", type=int, default=100, help="statements per POST (default: 100)")
    parser.add_argument("--concurrency", type=int, default=16, help="POSTing clients (default: 16)")
    parser.add_argument("--workers", type=int, default=2, help="LRS_HTTP_WORKERS (default: 2)")
    parser.add_argument("--evidence-share", type=float, default=0.05,
                        help="share of requests that carry the programme's cmi5 mix (default: 0.05)")
    parser.add_argument("--evidence-learners", type=int, default=2000,
                        help="rostered learners the programme statements are about (default: 2000)")
    parser.add_argument("--filters", type=lambda s: s.split(","), default=DEFAULT_FILTERS.split(","),
                        help=f"bench/queries.py filters (default: {DEFAULT_FILTERS})")
    parser.add_argument("--queries", type=int, default=100, help="pages per filter and mode (default: 100)")
    parser.add_argument("--clients", type=int, default=16, help="concurrent query clients (default: 16)")
    parser.add_argument("--replay-batch", type=int, default=10_000, help="events per replay transaction")
    parser.add_argument("--as-of-runs", type=int, default=10, help="timed summaries per kind (default: 10)")
    parser.add_argument("--keep", action="store_true", help="keep the store (bench/queries.py --data DIR/postgres/..)")
    parser.add_argument("--table", type=Path, nargs="+", metavar="FILE",
                        help="print growth results as Markdown (several: each cell holds every run's figure) and exit")
    add_result_options(parser)
    args = parser.parse_args(argv)
    if args.table is None:
        if args.data is None:
            parser.error("--data is required (or --table)")
        if args.sizes != sorted(args.sizes) or args.sizes[0] <= args.window:
            parser.error("--sizes must ascend and the first must exceed --window")
        if not 0 <= args.evidence_share < 1:
            parser.error("--evidence-share must be in [0, 1)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.table:
        print(tables([json.loads(path.read_text()) for path in args.table]))
        return 0
    if args.data.exists():
        print(f"growth: {args.data} exists; give a new directory", file=sys.stderr)
        return 2
    load_before = load_average()
    started = datetime.now(timezone.utc)
    try:
        result = asyncio.run(grow(args))
    finally:
        if not args.keep:
            shutil.rmtree(args.data, ignore_errors=True)
    record = {
        "benchmark": "growth", "started": started.isoformat(timespec="seconds"),
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": "python bench/growth.py " + " ".join(sys.argv[1:]),
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "machine": {**machine(load_before=load_before),
                    "note": "service, PostgreSQL, nats-server and the load generator share these cores with other work"},
        "note": args.note, **result,
    }
    print(tables([record]))
    if not args.no_write:
        write_result(record, "growth", args.label, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
