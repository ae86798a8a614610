"""Projection benchmark: lag under a sustained ingest rate, and replay rate.

1. Lag.  Starts PostgreSQL and nats-server (lrs.runtime) and ``lrs serve``
   with the competency projection on (relay -> JetStream -> runner), then
   POSTs statements aligned to the civil-servant programme at a fixed rate
   (``--rate`` statements/s in requests of ``--batch``) for ``--duration``
   seconds.  A monitor polls the log head and the projection's checkpoint in
   Postgres every few milliseconds.  A request's lag is the time from its 200
   to the first poll where the checkpoint has reached the log head as first
   seen after that 200 (an upper bound of its own position, so the lag is
   never under-reported).
2. Replay.  ``projections.replay.replay`` rebuilds the projection from the
   whole log in process; events/s = log length / time, and the CPU seconds
   this (Python) process spent per event.

``--replay-only N`` skips the lag part: it appends N statements (the same
mix, plus ``--void-share`` voiding statements) straight through the
statement writer into a fresh database (or ``--database-url``'s, when its log
is empty) and measures the replay alone, which is less sensitive to what else
runs on the machine than the lag.

Writes bench/results/projection-<UTC time>.json with the machine's load.

    python bench/projection.py --rate 5000 --duration 20
    python bench/projection.py --replay-only 200000
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import math
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import deque
from datetime import datetime, timezone
from urllib.parse import urlsplit
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
# This checkout first when run, last when imported: a bench that put another
# checkout first (``--tree``, ``--side``) before importing this module keeps
# measuring that checkout.
if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
elif str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))

from bench.process_cpu import ServiceCpu, per_statement_us, tree_cpu_s  # noqa: E402

RESULTS_DIR = Path(__file__).resolve().parent / "results"
COURSE = "https://lrs.example.org/courses/civil-servant-basic-digital-skills/modules/"
MODULES = [
    ("searching", "passed"), ("searching", "completed"), ("evaluating-sources", "passed"),
    ("online-communication", "completed"), ("e-government-services", "passed"), ("office-documents", "completed"),
    ("device-security", "passed"), ("personal-data", "passed"), ("troubleshooting", "passed"),
    ("using-ai-assistants", "passed"),
]
_TEMPLATE = (
    '{"id":"%s","actor":{"objectType":"Agent","mbox":"mailto:cs%d@agency%d.example.gov.vn"},'
    '"verb":{"id":"http://adlnet.gov/expapi/verbs/%s"},'
    '"object":{"objectType":"Activity","id":"%s%s"},'
    '"result":{"success":true,"completion":%s,"score":{"scaled":0.%02d}},'
    '"timestamp":"2025-%02d-%02dT%02d:%02d:00Z"}'
)
# Statements of a cmi5 session that are not evidence (nothing judged, completed or scored).
_SESSION = (
    '{"id":"%s","actor":{"objectType":"Agent","mbox":"mailto:cs%d@agency%d.example.gov.vn"},'
    '"verb":{"id":"http://adlnet.gov/expapi/verbs/%s"},'
    '"object":{"objectType":"Activity","id":"%s%s"},'
    '"timestamp":"2025-%02d-%02dT%02d:%02d:00Z"}'
)
SESSION_VERBS = ("launched", "initialized", "experienced", "terminated")
POLL_S = 0.005
KEY, SECRET = "bench-projection", "bench-projection-secret"


def statement(rng: random.Random, learners: int, evidence_share: float = 1.0, statement_id: str | None = None) -> str:
    """A statement on a module of the programme's course: with probability
    ``evidence_share`` a judged, scored or completed one (evidence), else a
    launched/initialized/experienced/terminated one of the same session."""
    n = rng.randrange(learners)
    module, verb = rng.choice(MODULES)
    sid = statement_id or str(uuid.uuid4())
    if evidence_share < 1.0 and rng.random() >= evidence_share:
        return _SESSION % (
            sid, n, n % 40, rng.choice(SESSION_VERBS), COURSE, module,
            rng.randrange(1, 13), rng.randrange(1, 29), rng.randrange(24), rng.randrange(60),
        )
    return _TEMPLATE % (
        sid, n, n % 40, verb, COURSE, module, "true" if verb == "completed" else "false",
        rng.randrange(75, 100), rng.randrange(1, 13), rng.randrange(1, 29), rng.randrange(24), rng.randrange(60),
    )


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


class Monitor:
    """(time, log head, checkpoint) every POLL_S seconds."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.samples: list[tuple[float, int, int]] = []
        self.relayed: list[int] = []  # the relay's checkpoint at each sample
        self.stop = False

    async def run(self) -> None:
        while not self.stop:
            row = await self.conn.fetchrow(
                "SELECT (SELECT position FROM log_head) AS head, "
                "(SELECT position FROM projection_checkpoints WHERE name = 'competency') AS done, "
                "(SELECT max(position) FROM relay_checkpoints) AS relayed"
            )
            self.samples.append((time.monotonic(), row["head"] or 0, row["done"] or 0))
            self.relayed.append(row["relayed"] or 0)
            await asyncio.sleep(POLL_S)

    def lag(self, answered: float, relay: bool = False) -> float | None:
        """Seconds from ``answered`` until the projection (or, with
        ``relay``, the relay's checkpoint) reached the head seen then."""
        target = None
        for i, (moment, head, done) in enumerate(self.samples):
            if target is None and moment >= answered:
                target = head
            if target is not None and (self.relayed[i] if relay else done) >= target:
                return max(0.0, moment - answered)
        return None


async def drive(
    url: str, rate: float, batch: int, duration: float, learners: int, seed: int, evidence_share: float
) -> tuple[list[float], int, int, float]:
    """POST at a fixed rate; returns (answer times, statements sent, errors, achieved seconds)."""
    from bench.ingest import _Connection, _uuid_texts  # the ingest bench's helpers (it puts bench/ first on the path)

    rng = random.Random(seed)
    auth = "Basic " + base64.b64encode(f"{KEY}:{SECRET}".encode()).decode()
    where = urlsplit(url)
    interval = batch / rate
    answered: list[float] = []
    errors = 0
    sent = 0
    pending: set[asyncio.Task[None]] = set()
    limit = asyncio.Semaphore(256)
    # The ingest bench's minimal keep-alive client: the load generator shares
    # the two cores with what it measures, so it must cost little CPU.
    idle: list[_Connection] = []

    async def one(body: bytes) -> None:
        nonlocal errors
        async with limit:
            conn = idle.pop() if idle else _Connection(where.hostname or "127.0.0.1", where.port or 80, "/xapi/statements", auth)
            try:
                status = await conn.post(body)
            except (OSError, ValueError, asyncio.IncompleteReadError):
                conn.close()
                errors += 1
                return
            idle.append(conn)
            if status == 200:
                answered.append(time.monotonic())
            else:
                errors += 1

    # Every body is built before the clock starts: building them while it runs
    # cost the load generator most of its CPU, on the cores it measures.
    bodies = deque(
        ("[" + ",".join(statement(rng, learners, evidence_share, i) for i in _uuid_texts(batch)) + "]").encode()
        for _ in range(math.ceil(duration * rate / batch) + 1)
    )
    start = time.monotonic()
    tick = 0
    try:
        while time.monotonic() - start < duration and bodies:
            body = bodies.popleft()
            task = asyncio.create_task(one(body))
            pending.add(task)
            task.add_done_callback(pending.discard)
            sent += batch
            tick += 1
            delay = start + tick * interval - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        elapsed = time.monotonic() - start
        await asyncio.gather(*pending)
    finally:
        for conn in idle:
            conn.close()
    return answered, sent, errors, elapsed


async def fill_log(
    database_url: str, count: int, learners: int, seed: int, void_share: float, evidence_share: float = 1.0
) -> int:
    """Append ``count`` statements (about ``void_share`` of them voiding an
    earlier one) through the statement writer; returns the log length."""
    from lrs.ingest.prepare import prepare_statements
    from lrs.service import migrate
    from lrs.store.pool import create_pool
    from lrs.store.writer import StatementWriter

    rng = random.Random(seed)
    authority = {"objectType": "Agent", "account": {"homePage": "https://lrs.example.org", "name": "bench"}}
    pool = await create_pool(database_url, min_size=1, max_size=4)
    try:
        await migrate(pool)
        if await pool.fetchval("SELECT position FROM log_head"):
            return int(await pool.fetchval("SELECT position FROM log_head"))
        writer = StatementWriter(pool)
        await writer.start()
        try:
            ids: list[tuple[str, dict]] = []
            done = 0
            while done < count:
                batch: list[dict] = []
                for _ in range(min(1000, count - done)):
                    if ids and rng.random() < void_share:
                        target, actor = ids.pop(rng.randrange(len(ids)))
                        batch.append({"actor": actor, "verb": {"id": "http://adlnet.gov/expapi/verbs/voided"},
                                      "object": {"objectType": "StatementRef", "id": target}})
                    else:
                        body = json.loads(statement(rng, learners, evidence_share))
                        ids.append((body["id"], body["actor"]))
                        batch.append(body)
                prepared = prepare_statements(batch, version="1.0.3", authority=authority, new_id=uuid.uuid4)
                await writer.append("default", prepared)
                done += len(batch)
        finally:
            await writer.close()
        return int(await pool.fetchval("SELECT position FROM log_head"))
    finally:
        await pool.close()


async def settle(database_url: str) -> None:
    """VACUUM (ANALYZE) the freshly filled log, as autovacuum has long done to
    the log of a running LRS: the first read of rows just bulk-written would
    otherwise also pay for setting their hint bits."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("VACUUM (ANALYZE) events")
        await conn.execute("VACUUM (ANALYZE) statements")
    finally:
        await conn.close()


def replay_in_own_process(database_url: str, replay_batch: int, tree: Path = ROOT, python: str | None = None) -> dict:
    """One replay in a fresh interpreter, as ``lrs replay`` runs: on uvloop,
    not in this process (whose heap holds what filling the log left), with
    ``tree``'s code (``bench/replay_measure.py``), by ``python`` (default:
    this interpreter)."""
    done = subprocess.run(
        [python or sys.executable, str(Path(__file__).resolve().parent / "replay_measure.py"),
         "--database-url", database_url, "--replay-batch", str(replay_batch), "--tree", str(tree)],
        capture_output=True, text=True, check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"bench/projection.py: the replay with {tree} failed:\n{done.stderr}")
    return json.loads(done.stdout.splitlines()[-1])


def _machine(load_before: list[float], load_during: list[float]) -> dict:
    return {
        "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
        "python": platform.python_version(), "loadavg_before": load_before, "loadavg_after_ingest": load_during,
        "note": "service, PostgreSQL, nats-server and the load generator share these cores",
        "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                 cwd=ROOT, check=False).stdout.strip(),
    }


async def replay_only(args: argparse.Namespace) -> dict:
    from lrs.runtime.embedded import ensure_database
    from lrs.runtime.postgres import EmbeddedPostgres

    pg = None
    database_url = args.database_url
    if database_url is None:
        work = Path(tempfile.mkdtemp(prefix="lrs-bench-replay-", dir=_work_root(args)))
        pg = EmbeddedPostgres(work / "pg")
        server = await pg.start()
        await ensure_database(server, "lrs")
        database_url = pg.url_for("lrs")
    try:
        await fill_log(database_url, args.replay_only, args.learners, args.seed, args.void_share, args.evidence_share)
        await settle(database_url)
        load_before = _load()
        runs = [replay_in_own_process(database_url, args.replay_batch) for _ in range(args.repeat)]
        load_after = _load()
    finally:
        if pg is not None:
            await pg.stop()
            shutil.rmtree(work, ignore_errors=True)
    # The middle run by events/s is the figure (the lower middle one for an
    # even count: a run that happened, with its digest); every run is kept.
    replayed = dict(sorted(runs, key=lambda r: r["events_per_s"])[(len(runs) - 1) // 2])
    if len(runs) > 1:
        replayed["runs_events_per_s"] = [r["events_per_s"] for r in runs]
        if len({r["digest"] for r in runs}) != 1:
            raise SystemExit("bench/projection.py: replays of the same log gave different digests")
    machine = _machine(load_before, load_after)
    machine["note"] = (
        f"replay only (Python process and PostgreSQL on these cores); load average {load_before[0]} before, "
        f"{load_after[0]} after, shared with other jobs"
    )
    return {
        "benchmark": "projection-replay",
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "settings": vars(args),
        "replay": replayed,
        "targets": {"replay_events_per_s": 50_000},
        "machine": machine,
    }


async def _checkpoint_updates(conn: asyncpg.Connection) -> int:
    """Updates of projection_checkpoints so far (PostgreSQL's statistics): one a batch the runner applied."""
    return int(await conn.fetchval(
        "SELECT coalesce(sum(n_tup_upd), 0) FROM pg_stat_user_tables WHERE relname = 'projection_checkpoints'"))


async def main_async(args: argparse.Namespace) -> int:
    if args.replay_only:
        result = await replay_only(args)
        print(json.dumps(result, indent=2))
        if not args.no_write:
            _write(result)
        return 0
    from bench.ingest import _free_port, _wait_ready
    from lrs.runtime.embedded import ensure_database
    from lrs.runtime.nats import EmbeddedNats
    from lrs.runtime.postgres import EmbeddedPostgres

    work = Path(tempfile.mkdtemp(prefix="lrs-bench-proj-", dir=_work_root(args)))
    pg = EmbeddedPostgres(work / "pg")
    nats = EmbeddedNats(work / "nats")
    server = await pg.start()
    await ensure_database(server, "lrs")
    database_url = pg.url_for("lrs")
    nats_url = await nats.start()
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "LRS_DATABASE_URL": database_url, "LRS_NATS_URL": nats_url, "LRS_HTTP_PORT": str(port),
           "LRS_DATA_DIR": str(work / "data"), "LRS_BOOTSTRAP_CREDENTIAL": f"{KEY}:{SECRET}",
           "LRS_LOG_LEVEL": "warning", "LRS_PROJECTIONS_ENABLED": "true", "LRS_HTTP_WORKERS": str(args.workers)}
    # --service-tree: another checkout's `lrs serve`, run by its own venv from its
    # own directory, so that before and after meet one load generator.
    tree = args.service_tree
    python = str(Path(tree) / ".venv" / "bin" / "python") if tree else sys.executable
    proc = subprocess.Popen([python, "-m", "lrs", "serve"], env=env, cwd=tree)
    result: dict = {}
    try:
        await _wait_ready(url, proc)
        load_before = _load()
        conn = await asyncpg.connect(database_url)
        head_before = int(await conn.fetchval("SELECT coalesce(max(position), 0) FROM events"))
        service_cpu = ServiceCpu(proc.pid)
        cpu_before, pg_before = service_cpu.sample(), tree_cpu_s(pg.pid)
        batches_before = await _checkpoint_updates(conn)
        monitor = Monitor(conn)
        watching = asyncio.create_task(monitor.run())
        answered, sent, errors, elapsed = await drive(
            url, args.rate, args.batch, args.duration, args.learners, args.seed, args.evidence_share
        )
        # let the projection finish what was sent (bounded)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            _, head, done = monitor.samples[-1]
            if done >= head:
                break
        await asyncio.sleep(0.05)
        monitor.stop = True
        await watching
        # CPU per statement of each process of the service (the projection's is
        # its CPU per event: every statement is one event) and of PostgreSQL
        # (ingest and projection together), from the start of the load until
        # the projection caught up.
        cpu_after, pg_after = service_cpu.sample(), tree_cpu_s(pg.pid)
        stored = int(await conn.fetchval("SELECT coalesce(max(position), 0) FROM events")) - head_before
        await asyncio.sleep(1.5)  # the runner's backend reports its counts within a second of a commit
        batches = await _checkpoint_updates(conn) - batches_before
        cpu_us = per_statement_us({**cpu_before, "postgresql": pg_before}, {**cpu_after, "postgresql": pg_after}, stored)
        lags = [lag for t in answered if (lag := monitor.lag(t)) is not None]
        relay_lags = [lag for t in answered if (lag := monitor.lag(t, relay=True)) is not None]
        load_during = _load()
        await conn.close()
        proc.terminate()
        proc.wait(60)

        replayed = None
        if not args.lag_only:
            await settle(database_url)
            replayed = replay_in_own_process(database_url, args.replay_batch)
        result = {
            "benchmark": "projection",
            "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "settings": vars(args),
            "ingest": {
                "target_statements_per_s": args.rate,
                "achieved_statements_per_s": round(len(answered) * args.batch / elapsed, 1),
                "statements_sent": sent,
                "requests_answered_200": len(answered),
                "errors": errors,
            },
            "lag_s": {
                "p50": _pct(lags, 50), "p99": _pct(lags, 99), "max": max(lags) if lags else None,
                "measured_requests": len(lags), "poll_interval_s": POLL_S,
                "relay_checkpoint_p50": _pct(relay_lags, 50), "relay_checkpoint_p99": _pct(relay_lags, 99),
            },
            "cpu_us_per_statement": cpu_us,
            "statements_stored": stored,
            # the runner's transactions that moved its checkpoint (one a batch applied)
            "projection_batches": batches,
            "events_per_batch": round(stored / batches, 1) if batches else None,
            "replay": replayed,
            "targets": {"lag_p99_s": 1.0, "replay_events_per_s": 50_000},
            "machine": _machine(load_before, load_during),
        }
        result["machine"]["note"] = (
            f"service ({args.workers} HTTP worker(s)" + (", relay and projection in their own processes" if args.workers > 1
            else "; relay and projection in the same process") + f"), PostgreSQL, nats-server and the load generator "
            f"share these cores; load average {load_before[0]} before, {load_during[0]} after ingest, with other jobs"
        )
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        await nats.stop()
        await pg.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result, indent=2))
    if not args.no_write:
        _write(result)
    return 0


def _work_root(args: argparse.Namespace) -> str | None:
    """Where the scratch store goes: ``--work-dir`` (made if missing), else the system's temporary directory."""
    if args.work_dir is None:
        return None
    Path(args.work_dir).mkdir(parents=True, exist_ok=True)
    return args.work_dir


def _branch() -> str:
    """The checkout's branch, so that result files of branches benchmarked at once do not collide."""
    name = subprocess.run(["git", "rev-parse", "--abbrev-ref", "HEAD"], capture_output=True, text=True,
                          cwd=ROOT, check=False).stdout.strip()
    return "" if name in ("", "HEAD") else f"{name}-"


def _write(result: dict) -> None:
    RESULTS_DIR.mkdir(exist_ok=True)
    label = result.get("settings", {}).get("label") or ""
    path = RESULTS_DIR / f"projection-{_branch()}{label + '-' if label else ''}{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=5000, help="statements/s to offer (default: 5000)")
    parser.add_argument("--batch", type=int, default=50, help="statements per POST (default: 50)")
    parser.add_argument("--duration", type=float, default=20, help="seconds of sustained ingest (default: 20)")
    parser.add_argument("--learners", type=int, default=20_000, help="distinct learners (default: 20000)")
    parser.add_argument(
        "--evidence-share", type=float, default=1.0,
        help="share of statements that are evidence (passed/failed/completed with a result on an aligned "
        "module); the others are launched/initialized/experienced/terminated statements of the same cmi5 "
        "sessions, which the projection reads and finds no evidence in (default: 1.0, every statement; "
        "0.33 is one cmi5 session of launched, initialized, passed, completed, terminated and a page view)",
    )
    parser.add_argument("--replay-batch", type=int, default=10_000, help="events per replay transaction (default: 10000)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=1,
                        help="LRS_HTTP_WORKERS of the service; above 1 the projection runs as its own process (default: 1)")
    parser.add_argument("--replay-only", type=int, metavar="N", default=0,
                        help="measure only the replay of a log of N statements (default: off)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="with --replay-only: replays of the same log; the median one is reported (default: 1)")
    parser.add_argument("--void-share", type=float, default=0.01,
                        help="share of voiding statements with --replay-only (default: 0.01)")
    parser.add_argument("--database-url", help="with --replay-only: use this database (filled when its log is empty)")
    parser.add_argument("--no-write", action="store_true", help="print only; do not write bench/results/")
    parser.add_argument("--lag-only", action="store_true", help="skip the replay after the lag run")
    parser.add_argument("--service-tree", metavar="CHECKOUT",
                        help="run another checkout's `lrs serve` with its own .venv (before/after with one load generator)")
    parser.add_argument("--label", default="", help="added to the result file's name")
    parser.add_argument("--work-dir", help="directory for the scratch stores (PostgreSQL, JetStream), removed after "
                        "the run (default: the system's temporary directory)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not 0.0 <= args.evidence_share <= 1.0:
        raise SystemExit("bench/projection.py: --evidence-share must be between 0 and 1")
    if args.repeat < 1:
        raise SystemExit("bench/projection.py: --repeat must be at least 1")
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
