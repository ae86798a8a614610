"""Ingest benchmark: drives a running LRS over HTTP and records the figures.

For each batch size it POSTs statements from ``--concurrency`` concurrent
clients for ``--duration`` seconds (after a warm-up), then prints statements/s
and request latency p50/p99, and writes everything to
``bench/results/ingest-<UTC time>.json``.

    # against a service that is already running
    python bench/ingest.py --url http://127.0.0.1:8080 --key K --secret S

    # or let the bench start `lrs serve` (embedded PostgreSQL and nats-server)
    python bench/ingest.py --start-service

Every 200 counted here means the statements were committed durably: the
service answers only after its group commit has reached PostgreSQL.

The load generator shares the machine with the service, so it is made
cheap (bodies built before the clock runs, fresh statement ids joined in per
request, a minimal HTTP/1.1 client) and its own CPU per statement is
recorded apart from the service's (``bench_client_cpu_us_per_statement``,
printed as "load generator"): about 1 µs a statement at batch 100.

Who the statements name (``--learners``; what sealing personal data costs
depends on it, docs/privacy.md "Cost"):

* ``--learners 0`` (the default), **new name every statement**: statement
  number n names "Learner <n>" with the mbox of learner n mod 50,000, so no
  two statements name a learner alike.  The worst case for a service that
  seals personal data: it never reuses a sealed form and encrypts every
  actor again.  Figures recorded before this option existed were taken so.
* ``--learners N``, **a learner population**: N learners, each with one
  name and mbox in every statement naming them (as platforms send them),
  each statement naming one drawn at random (uniformly; ``--seed``).  A
  fresh store (``--start-service``) then sees first sights early and fewer
  as the runs go on; ``--warm-passes K`` first posts every learner K times
  (random order, batches of 100, not measured) so the service has seen
  them: the steady state of a running programme.  ``--first-sights P``:
  that share of statements name a learner never named before (numbered
  from N up), the rest one of the N.  Each run records the share of its
  statements that named a learner this bench had not named before
  (``learners.first_sight_share``).

    # a national programme's steady state, sealing on (the default) and off
    LRS_HTTP_WORKERS=2 LRS_PROJECTIONS_ENABLED=false python bench/ingest.py --start-service \
        --batch-sizes 100,1 --concurrency 16,32 --duration 15 --learners 200000 --warm-passes 3
    LRS_SEAL_PERSONAL_DATA=false LRS_HTTP_WORKERS=2 LRS_PROJECTIONS_ENABLED=false python bench/ingest.py ...
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import math
import os
import platform
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from array import array
from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from process_cpu import ServiceCpu, load_average, per_statement_us  # noqa: E402

RESULTS_DIR = Path(__file__).resolve().parent / "results"

_TEMPLATE = (
    '{"id":"%s","actor":{"objectType":"Agent","name":"Learner %d","mbox":"mailto:learner%d@agency%d.example.gov"},'
    '"verb":{"id":"http://adlnet.gov/expapi/verbs/passed","display":{"en-US":"passed"}},'
    '"object":{"objectType":"Activity","id":"https://mooc.example.gov/courses/digcomp/unit-%d",'
    '"definition":{"name":{"en-US":"Digital literacy unit %d"},"type":"http://adlnet.gov/expapi/activities/lesson"}},'
    '"result":{"score":{"scaled":0.%02d,"raw":%d,"min":0,"max":100},"success":true,"completion":true,"duration":"PT%dM"},'
    '"context":{"registration":"%s","platform":"bench","language":"vi-VN",'
    '"contextActivities":{"parent":[{"id":"https://mooc.example.gov/courses/digcomp"}]}},'
    '"timestamp":"2026-11-01T08:%02d:00Z"}'
)


_VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}


def _uuid_texts(count: int) -> list[str]:
    """``count`` random version 4 UUIDs as text.  One ``os.urandom`` call for
    all of them: ``str(uuid.uuid4())`` per statement cost the load generator
    more CPU than the rest of building the statements."""
    h = os.urandom(16 * count).hex()
    return [
        f"{h[i:i + 8]}-{h[i + 8:i + 12]}-4{h[i + 13:i + 16]}-{_VARIANT[h[i + 16]]}{h[i + 17:i + 20]}-{h[i + 20:i + 32]}"
        for i in range(0, 32 * count, 32)
    ]


def _statement(n: int, statement_id: str, registration: str) -> str:
    score = n % 100
    return _TEMPLATE % (
        statement_id, n, n % 50_000, n % 40, n % 21, n % 21, score, score, 1 + n % 59, registration, n % 60
    )


# Distinct statement contents the bodies cycle through (learners, activities,
# scores, registrations); each request gets fresh statement ids on top.
TEMPLATE_STATEMENTS = 50_000


_ACTOR = b'{"objectType":"Agent","name":"Learner %d","mbox":"mailto:learner%d@agency%d.example.gov"}'


class Learners:
    """A learner population (``--learners``): :meth:`next` is the actor of
    the next statement, one of ``count`` learners drawn at random (each
    always named the same way), or with probability ``first_sights`` a
    learner never named before (numbered from ``count`` up).  The draws are
    made before the clock runs (a cycle of ``draws`` of them, ``seed``), so
    a statement costs the load generator one look-up and one ``%`` format.
    One population serves every run of a service: a learner named in one
    run is known in the next."""

    def __init__(self, count: int, first_sights: float = 0.0, seed: int = 1, draws: int = 1 << 20) -> None:
        if count < 1:
            raise ValueError("a learner population needs at least one learner")
        rng = random.Random(seed)
        self.count = count
        self.first_sights = first_sights
        # -1: a learner never named before.
        self._draws = array("l", (-1 if first_sights and rng.random() < first_sights else rng.randrange(count)
                                  for _ in range(draws)))
        self._at = 0
        self._next_new = count
        self._named = bytearray(count)  # which of the count this bench has named
        self.statements = 0
        self.first_seen = 0  # statements naming a learner for the first time (in this bench)

    def next(self) -> bytes:
        number = self._draws[self._at]
        self._at = (self._at + 1) % len(self._draws)
        self.statements += 1
        if number < 0:
            number = self._next_new
            self._next_new += 1
            self.first_seen += 1
        elif not self._named[number]:
            self._named[number] = 1
            self.first_seen += 1
        return _ACTOR % (number, number, number % 40)

    def each_once(self) -> "Learners":
        """A population that names each of the ``count`` learners once, in a
        random order (the warm-up passes), marking them named here."""
        order = list(range(self.count))
        random.Random(self._at + self.statements).shuffle(order)
        once = Learners.__new__(Learners)
        once.count, once.first_sights = self.count, 0.0
        once._draws, once._at, once._next_new, once._named = array("l", order), 0, self.count, self._named
        once.statements = once.first_seen = 0
        return once

    def counts(self) -> tuple[int, int]:
        return self.statements, self.first_seen


class _Bodies:
    """Request bodies with unique statement ids, made for almost no CPU.

    ``count`` bodies are built once, before the clock runs (``_statement``:
    their contents cycle through learners, activities and registrations),
    and split around each statement's id and the number in its learner's
    name.  Each request then takes the next one and joins its pieces with a
    new id (a random prefix for the run and the statement's sequence number)
    and that sequence number as the name's, as ``_body`` would have written
    it: every statement names a new learner, as before.  Two ``%`` formats
    per statement, no JSON encoding and no UUID generation (building each
    body while the clock ran cost the load generator about a third of its
    CPU, on the cores the service uses).  The ids are UUIDs in standard
    form, unique within a run and, by the random prefix, across runs.
    """

    _ID = '{"id":"'
    _NAME = '"name":"Learner '
    _ACTOR = '"actor":'

    def __init__(self, batch: int, count: int, learners: Learners | None = None) -> None:
        self.batch = batch
        # With a learner population the second slot is the whole actor, one of its learners.
        self.learners = learners
        self.templates: list[list[bytes]] = []
        for start in range(0, max(1, count) * batch, batch):
            ids = _uuid_texts(2 * batch)
            texts = [_statement(start + i, ids[2 * i], ids[2 * i + 1]) for i in range(batch)]
            body = "[" + ",".join(texts) + "]" if batch > 1 else texts[0]
            # Pieces between the slots: [before id, (id), before name number / actor, (number / actor), ...].
            parts, at = [], 0
            for text in texts:
                offset = body.index(text, at)
                id_at = offset + len(self._ID)
                if learners is None:
                    slot_at = body.index(self._NAME, id_at) + len(self._NAME)
                    slot_end = slot_at
                    while body[slot_end].isdigit():
                        slot_end += 1
                else:
                    slot_at = body.index(self._ACTOR, id_at) + len(self._ACTOR)
                    slot_end = body.index("}", slot_at) + 1
                parts += [body[at:id_at].encode(), body[id_at + 36:slot_at].encode()]
                at = slot_end
            parts.append(body[at:].encode())
            self.templates.append(parts)
        self.next_template = 0
        prefix = os.urandom(10).hex()
        self.id_format = f"{prefix[:8]}-{prefix[8:12]}-4{prefix[12:15]}-{_VARIANT[prefix[15]]}{prefix[16:19]}-%012x".encode()
        self.next_number = 0
        self.built_during_run = 0  # kept in the results for comparison with older runs: always 0 now

    def next(self) -> bytes:
        parts = self.templates[self.next_template]
        self.next_template = (self.next_template + 1) % len(self.templates)
        first = self.next_number
        self.next_number = first + self.batch
        id_format = self.id_format
        out = []
        append = out.append
        learners = self.learners
        for n in range(self.batch):
            number = first + n
            append(parts[2 * n])
            append(id_format % number)
            append(parts[2 * n + 1])
            append(b"%d" % number if learners is None else learners.next())
        append(parts[-1])
        return b"".join(out)


def _body(batch: int, counter: list[int]) -> bytes:
    start = counter[0]
    counter[0] += batch
    ids = _uuid_texts(2 * batch)
    statements = [_statement(start + i, ids[2 * i], ids[2 * i + 1]) for i in range(batch)]
    if batch == 1:
        return statements[0].encode()
    return ("[" + ",".join(statements) + "]").encode()


class _Connection:
    """A minimal HTTP/1.1 keep-alive client: the load generator shares the
    machine with the service, so it must cost as little CPU as possible
    (a general-purpose client spends several times more per request)."""

    def __init__(self, host: str, port: int, path: str, auth: str) -> None:
        self.host, self.port = host, port
        self.head = (
            f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: {auth}\r\n"
            "X-Experience-API-Version: 1.0.3\r\nContent-Type: application/json\r\n"
            "Content-Length: %d\r\n\r\n"
        )
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.retry_after: float | None = None  # the last answer's Retry-After, if it had one

    async def post(self, body: bytes) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write((self.head % len(body)).encode() + body)
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("connection closed")
        status = int(status_line.split(b" ", 2)[1])
        length = 0
        close = False
        self.retry_after = None
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.partition(b":")
            lowered = name.strip().lower()
            if lowered == b"content-length":
                length = int(value)
            elif lowered == b"connection" and value.strip().lower() == b"close":
                close = True
            elif lowered == b"retry-after":
                self.retry_after = float(value)
        if length:
            await self.reader.readexactly(length)
        if close:
            self.close()
        return status

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def _client(conn, batch, deadline, warmup_end, latencies, counts, errors, bodies):
    while True:
        now = time.perf_counter()
        if now >= deadline:
            conn.close()
            return
        body = bodies.next()
        started = time.perf_counter()
        try:
            status = await conn.post(body)
        except (OSError, ConnectionError, asyncio.IncompleteReadError, ValueError) as exc:
            errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
            conn.close()
            continue
        finished = time.perf_counter()
        if status != 200:
            errors[str(status)] = errors.get(str(status), 0) + 1
            continue
        if started >= warmup_end:
            latencies.append(finished - started)
            counts[0] += batch


async def run_one(url: str, auth: str, batch: int, concurrency: int, duration: float, warmup: float,
                  cpu: ServiceCpu | None = None, log: LogSampler | None = None,
                  learners: Learners | None = None, bodies: "_Bodies | None" = None,
                  count_ended: bool = False) -> dict:
    """One measured run.  ``cpu``: the service's process tree, sampled when the
    warm-up ends and when the run ends, for CPU per statement by process group;
    ``count_ended``: also the same figures counting the processes that ended
    between the samples (PostgreSQL backends, autovacuum workers), from the same readings;
    ``log``: the service's database, for its group commits over the same time;
    ``learners``: who the statements name (None: a new name every statement);
    ``bodies``: the request bodies to go on from (default: new ones, which
    start the names again from "Learner 0": runs repeated on one service
    then name their learners as the first run did)."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    path = (parts.path.rstrip("/") or "") + "/xapi/statements"
    latencies: list[float] = []
    counts = [0]
    errors: dict[str, int] = {}
    if bodies is None:
        bodies = _Bodies(batch, math.ceil(TEMPLATE_STATEMENTS / batch), learners)
    start = time.perf_counter()
    warmup_end = start + warmup
    deadline = warmup_end + duration
    samples: list[dict[str, float]] = []
    client_cpu: list[float] = []
    named: list[tuple[int, int]] = []  # (statements, first sights) built by then

    async def sample_at_warmup_end() -> None:
        await asyncio.sleep(max(0.0, warmup_end - time.perf_counter()))
        client_cpu.append(time.process_time())
        if learners is not None:
            named.append(learners.counts())
        if cpu is not None:
            sample_cpu()
        if log is not None:
            log_samples.append(await log.sample())
        if cpu is not None:  # a service this bench started: its own workers
            refused.append(await refused_by_worker(url, auth))

    log_samples: list[dict[str, int]] = []
    ended_samples: list[dict[str, float]] = []
    refused: list[dict[str, float]] = []

    def sample_cpu() -> None:
        assert cpu is not None
        if count_ended:
            without, with_ended = cpu.sample_both()
            samples.append(without)
            ended_samples.append(with_ended)
        else:
            samples.append(cpu.sample())

    sampler = asyncio.ensure_future(sample_at_warmup_end())
    await asyncio.gather(
        *(
            _client(_Connection(host, port, path, auth), batch, deadline, warmup_end, latencies, counts, errors, bodies)
            for _ in range(concurrency)
        )
    )
    await sampler
    measured = time.perf_counter() - warmup_end
    if cpu is not None:
        sample_cpu()
    if log is not None:
        log_samples.append(await log.sample())
    if refused:
        refused.append(await refused_by_worker(url, auth))
    client_cpu_s = time.process_time() - client_cpu[0]
    latencies.sort()
    population = describe_learners(learners)
    if learners is not None and named:
        statements, first = (b - a for a, b in zip(named[0], learners.counts()))
        population["first_sight_share"] = round(first / statements, 4) if statements else None

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000 if latencies else float("nan")

    return {
        "batch_size": batch,
        "concurrency": concurrency,
        "duration_s": round(measured, 3),
        "requests": len(latencies),
        "statements": counts[0],
        "statements_per_s": round(counts[0] / measured, 1),
        "bodies_built_during_run": bodies.built_during_run,
        "body_templates": len(bodies.templates),
        "latency_ms": {
            "p50": round(pct(0.50), 2),
            "p99": round(pct(0.99), 2),
            "mean": round(statistics.fmean(latencies) * 1000, 2) if latencies else None,
        },
        "errors": errors,
        "learners": population,
        "service_cpu_us_per_statement": per_statement_us(samples[0], samples[1], counts[0]) if samples else None,
        # --count-ended-backends: the same with the processes that ended during the run counted
        "service_cpu_us_per_statement_ended_counted": per_statement_us(*ended_samples, counts[0])
        if len(ended_samples) == 2 else None,
        "bench_client_cpu_us_per_statement": round(client_cpu_s / counts[0] * 1e6, 1) if counts[0] else None,
        "load_average_after": load_average(),
        "group_commits": await log.between(*log_samples) if log is not None and len(log_samples) == 2 else None,
        # Requests sealed again after a refused key (lrs_learner_keys_refused), by worker, over the measured run.
        "keys_refused": {pid: after - refused[0].get(pid, 0.0) for pid, after in refused[1].items()}
        if len(refused) == 2 and refused[0] else None,
    }


async def refused_by_worker(url: str, auth: str, tries: int = 24) -> dict[str, float]:
    """``lrs_learner_keys_refused`` of each HTTP worker (by ``lrs_process_id``):
    requests the group commit refused for a key the worker made that was not
    the live one, sealed again.  Each worker serves its own /metrics, so the
    scrape is repeated on new connections until it has met each of
    ``LRS_HTTP_WORKERS`` (SO_REUSEPORT hands a new connection to one of them
    at random).  Empty for a build without the counter."""
    workers = int(os.environ.get("LRS_HTTP_WORKERS", "1"))
    found: dict[str, float] = {}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
        for _ in range(tries):
            async with session.get(f"{url}/metrics", headers={"Authorization": auth}) as response:
                text = await response.text()
            values = dict(line.rsplit(" ", 1) for line in text.splitlines()
                          if line.startswith(("lrs_process_id ", "lrs_learner_keys_refused_total ")))
            if "lrs_process_id" not in values:
                return {}
            found[str(int(float(values["lrs_process_id"])))] = float(values.get("lrs_learner_keys_refused_total", 0))
            if len(found) >= workers:
                break
    return found


def describe_learners(learners: Learners | None) -> dict:
    """Who a run's statements named, for its record."""
    if learners is None:
        return {"mode": "new name every statement",
                "detail": "statement n names 'Learner <n>' with learner n mod 50,000's mbox: no sealed form is reused"}
    return {"mode": "population", "learners": learners.count, "first_sights": learners.first_sights}


async def warm_learners(url: str, auth: str, learners: Learners, passes: int, concurrency: int) -> dict:
    """``passes`` times, every learner of ``learners`` named once (random
    order, batches of 100, ``concurrency`` clients; not measured): the
    service has then seen them, each worker most of them (a connection goes
    to one worker; after k passes a worker of two has missed a learner with
    chance about 2^-k)."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    path = (parts.path.rstrip("/") or "") + "/xapi/statements"
    started = time.perf_counter()
    posted = 0
    for _ in range(passes):
        once = learners.each_once()
        bodies = _Bodies(100, 20, once)
        requests = math.ceil(learners.count / 100)
        queue = iter(range(requests))

        async def client() -> None:
            nonlocal posted
            conn = _Connection(host, port, path, auth)
            try:
                for _ in queue:
                    body = bodies.next()
                    for attempt in range(20):
                        status = await conn.post(body)
                        if status == 200:
                            posted += 100
                            break
                        await asyncio.sleep(conn.retry_after or 0.5)
                    else:
                        raise SystemExit(f"warm-up pass: HTTP {status}")
            finally:
                conn.close()

        await asyncio.gather(*(client() for _ in range(concurrency)))
    return {"passes": passes, "statements": posted, "seconds": round(time.perf_counter() - started, 1)}


def embedded_database_url(data_dir: Path) -> str:
    """The URL of the database of an ``lrs serve`` started with ``LRS_DATA_DIR=data_dir``."""
    from lrs.runtime.embedded import DATABASE_NAME
    from lrs.runtime.postgres import database_url

    return database_url(data_dir / "postgres" / "run", DATABASE_NAME)


class LogSampler:
    """The service's log head and PostgreSQL's transaction count, sampled when
    a run's warm-up ends and when it ends: how many group commits wrote the
    run's statements (a group's events are stored one microsecond apart, a
    new group's at the clock), and how many transactions PostgreSQL committed
    for each statement (every pooled query, reset and lock included)."""

    def __init__(self, conn) -> None:  # type: ignore[no-untyped-def]
        self._conn = conn

    @classmethod
    async def connect(cls, url: str) -> "LogSampler":
        import asyncpg

        return cls(await asyncpg.connect(url))

    async def sample(self) -> dict[str, int]:
        row = await self._conn.fetchrow(
            "SELECT (SELECT position FROM log_head WHERE singleton) AS position,"
            " xact_commit FROM pg_stat_database WHERE datname = current_database()"
        )
        return {"position": row["position"], "xact_commit": row["xact_commit"]}

    async def between(self, first: dict[str, int], last: dict[str, int]) -> dict[str, float]:
        groups = await self._conn.fetchval(
            "SELECT count(*) FROM (SELECT stored - lag(stored) OVER (ORDER BY position) AS gap"
            " FROM events WHERE position >= $1 AND position <= $2) g WHERE g.gap IS DISTINCT FROM interval '1 microsecond'",
            first["position"], last["position"],
        )
        statements = last["position"] - first["position"]
        groups = max(int(groups) - 1, 1)  # the first row only anchors the gaps
        return {
            "groups": groups,
            "statements_per_group": round(statements / groups, 2),
            "transactions_per_statement": round((last["xact_commit"] - first["xact_commit"]) / max(statements, 1), 2),
        }

    async def close(self) -> None:
        await self._conn.close()


def _machine() -> dict:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        mem_kb = int(next(l for l in Path("/proc/meminfo").read_text().splitlines() if l.startswith("MemTotal")).split()[1])
    except (OSError, StopIteration, ValueError):
        mem_kb = 0
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).parent, check=False).stdout.strip()
    except OSError:
        commit = ""
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "os": platform.platform(),
        "commit": commit,
    }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def _wait_ready(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SystemExit(f"lrs serve exited with {proc.returncode}")
            try:
                async with session.get(url + "/ready") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    raise SystemExit("lrs serve did not become ready")


@contextlib.asynccontextmanager
async def bench_target(args: argparse.Namespace, stop_timeout: float = 60) -> AsyncIterator[tuple[str, str, str]]:
    """(url, key, secret) of the service to drive: ``--url`` with ``--key`` and
    ``--secret``, or with ``--start-service`` an ``lrs serve`` on a free port,
    stopped on exit, whose data dir (a new temp dir unless ``--data-dir``) is
    then removed."""
    if not args.start_service:
        yield args.url.rstrip("/"), args.key, args.secret
        return
    port = _free_port()
    url, key, secret = f"http://127.0.0.1:{port}", "bench", uuid.uuid4().hex
    scratch = None if args.data_dir else tempfile.mkdtemp(prefix="lrs-bench-")  # it holds GBs
    proc = None
    try:
        env = {**os.environ, "LRS_HTTP_PORT": str(port), "LRS_DATA_DIR": args.data_dir or scratch,
               "LRS_BOOTSTRAP_CREDENTIAL": f"{key}:{secret}", "LRS_LOG_LEVEL": getattr(args, "log_level", "info")}
        # --service-tree: another checkout's `lrs serve`, run by its own venv from
        # its own directory, so before/after builds compare with one client.
        tree = getattr(args, "service_tree", None)
        python = str(Path(tree) / ".venv" / "bin" / "python") if tree else sys.executable
        # The service's log (a line a request at info) goes to a file, as a
        # deployment's goes to a file or a collector, not to this terminal.
        service_log = open(Path(args.data_dir or scratch) / "serve.log", "ab")
        try:
            # In a session of its own: a terminal's Ctrl-C (SIGINT to the
            # foreground process group) reaches this bench, which stops the
            # service below (see run_stoppable), not the service directly.
            proc = subprocess.Popen([python, "-m", "lrs", "serve"], env=env, cwd=tree, stderr=service_log,
                                    start_new_session=True)
        finally:
            service_log.close()
        try:
            await _wait_ready(url, proc)
        except (Exception, SystemExit):  # not a cancel (Ctrl-C): the log only when the service failed
            print((Path(args.data_dir or scratch) / "serve.log").read_text(errors="replace")[-4000:], file=sys.stderr)
            raise
        args.service_pid = proc.pid
        args.database_url = embedded_database_url(Path(args.data_dir or scratch))
        yield url, key, secret
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=stop_timeout)
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


T = TypeVar("T")


def run_stoppable(work: Coroutine[Any, Any, T], name: str,
                  run: Callable[[Coroutine[Any, Any, T]], T] = asyncio.run) -> T:
    """``run(work)``, stopped by SIGINT (Ctrl-C) or SIGTERM whenever it
    comes: the signal cancels ``work``, so each ``bench_target`` it is in
    TERMs and waits for its ``lrs serve``; then one line on stderr and exit
    status 130.  The handlers are installed on the loop rather than
    inherited: a shell that starts a command in the background (``&``)
    leaves SIGINT ignored in it."""
    received: list[signal.Signals] = []

    async def until_signalled() -> T:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None

        def stop(sig: signal.Signals) -> None:
            received.append(sig)
            task.cancel()

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop, sig)
        try:
            return await work
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    try:
        return run(until_signalled())
    except asyncio.CancelledError:
        if not received:
            raise
        print(f"{name}: stopped by {received[0].name}; the services it started are stopped",
              file=sys.stderr, flush=True)
        raise SystemExit(130) from None


async def main_async(args: argparse.Namespace) -> int:
    runs = []
    async with bench_target(args) as (url, key, secret):
        if not key or not secret:
            print("bench: --key and --secret (or LRS_BENCH_KEY / LRS_BENCH_SECRET) are required", file=sys.stderr)
            return 2
        auth = "Basic " + base64.b64encode(f"{key}:{secret}".encode()).decode()
        service_pid = getattr(args, "service_pid", None)
        cpu = ServiceCpu(service_pid) if service_pid else None
        database_url = getattr(args, "database_url", None)
        log = await LogSampler.connect(database_url) if database_url else None
        learners = Learners(args.learners, args.first_sights, args.seed) if args.learners else None
        warmed = None
        if learners is not None and args.warm_passes:
            warmed = await warm_learners(url, auth, learners, args.warm_passes, max(args.concurrency or [16]))
            print(f"warm-up: every one of {learners.count:,} learners named {args.warm_passes} times "
                  f"({warmed['statements']:,} statements, {warmed['seconds']} s)", flush=True)
        load_before = load_average()
        for index, batch in enumerate(args.batch_sizes):
            concurrency = _concurrency(args.concurrency, index, batch)
            for _ in range(args.repeat):
                result = await run_one(url, auth, batch, concurrency, args.duration, args.warmup, cpu, log, learners,
                                       count_ended=args.count_ended_backends)
                runs.append(result)
                used = result["service_cpu_us_per_statement"]
                ended = result["service_cpu_us_per_statement_ended_counted"]
                print(
                    f"batch={batch:>4} concurrency={concurrency:>3}  {result['statements_per_s']:>10,.0f} statements/s  "
                    f"p50={result['latency_ms']['p50']:.1f} ms  p99={result['latency_ms']['p99']:.1f} ms"
                    + (f"  errors={result['errors']}" if result["errors"] else "")
                    + (f"  CPU µs/statement {({k: v for k, v in used.items() if not k.endswith(' system')})}"
                       if used else "")
                    + (f"  with ended backends {({k: v for k, v in ended.items() if not k.endswith(' system')})}"
                       if ended else "")
                    + f"  load generator {result['bench_client_cpu_us_per_statement']} µs/statement"
                    + (f"  {result['group_commits']}" if result["group_commits"] else "")
                    + (f"  keys refused {result['keys_refused']} of {result['requests']} requests"
                       if result["keys_refused"] is not None else "")
                    + (f"  first sights {result['learners']['first_sight_share']:.1%}"
                       if "first_sight_share" in result["learners"] else "")
                    + f"  load {result['load_average_after']}",
                    flush=True,
                )
        if log is not None:
            await log.close()
    record = {
        "benchmark": "ingest",
        "recorded_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "target": url if not args.start_service else "lrs serve (embedded PostgreSQL and nats-server)",
        "machine": _machine(),
        "note": args.note,
        "learners": {**describe_learners(learners), "warm_up": warmed} if learners is not None
        else describe_learners(None),
        "sealing": os.environ.get("LRS_SEAL_PERSONAL_DATA", "true (default)") if args.start_service else "unknown",
        "service_log_level": getattr(args, "log_level", "info") if args.start_service else "unknown",
        "load_average_before": load_before,
        "runs": runs,
        "summary": summarise(runs),
    }
    if args.repeat > 1:
        for row in record["summary"]:
            print(f"batch={row['batch']:>4} concurrency={row['concurrency']:>3}  median {row['median_statements_per_s']:>10,.0f} "
                  f"statements/s over {row['runs']} runs ({row['min_statements_per_s']:,.0f}-{row['max_statements_per_s']:,.0f})")
    if not args.no_save:
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        out = args.output or RESULTS_DIR / f"ingest-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}.json"
        Path(out).write_text(json.dumps(record, indent=2) + "\n")
        print(f"wrote {out}")
    return 0


def summarise(runs: list[dict]) -> list[dict]:
    """Per (batch, concurrency): the median, lowest and highest statements/s
    of its runs (identical runs on a shared machine differ, so one run is
    not a figure to quote)."""
    groups: dict[tuple[int, int], list[float]] = {}
    for run in runs:
        groups.setdefault((run["batch_size"], run["concurrency"]), []).append(run["statements_per_s"])
    return [
        {"batch": batch, "concurrency": concurrency, "runs": len(rates),
         "median_statements_per_s": round(statistics.median(rates), 1),
         "min_statements_per_s": min(rates), "max_statements_per_s": max(rates)}
        for (batch, concurrency), rates in groups.items()
    ]


def _concurrency(given: list[int], index: int, batch: int) -> int:
    if not given:
        return 32 if batch == 1 else 8
    return given[index] if len(given) > 1 else given[0]


def add_service_options(parser: argparse.ArgumentParser, bench: str) -> None:
    """The options every HTTP bench shares: which service, or start one, and where the result goes."""
    parser.add_argument("--url", default=os.environ.get("LRS_BENCH_URL", "http://127.0.0.1:8080"),
                        help="base URL of the service (default: LRS_BENCH_URL or http://127.0.0.1:8080)")
    parser.add_argument("--key", default=os.environ.get("LRS_BENCH_KEY"), help="credential key (LRS_BENCH_KEY)")
    parser.add_argument("--secret", default=os.environ.get("LRS_BENCH_SECRET"),
                        help="credential secret (LRS_BENCH_SECRET)")
    parser.add_argument("--start-service", action="store_true",
                        help="start `lrs serve` on a free port with an embedded database for the run")
    parser.add_argument("--service-tree", metavar="CHECKOUT",
                        help="with --start-service: run that checkout's `lrs serve` with its own .venv (A/B of builds)")
    parser.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"),
                        help="LRS_LOG_LEVEL of --start-service's service (default: info, the service's own "
                             "default; runs before this option used warning); its log goes to serve.log in the data dir")
    parser.add_argument("--data-dir", help="LRS_DATA_DIR for --start-service (default: a new temp dir, removed at the end)")
    parser.add_argument("--output", help=f"result file (default: bench/results/{bench}-<time>.json)")
    parser.add_argument("--note", default="", help="free text stored with the result")
    parser.add_argument("--no-save", action="store_true", help="print only, write no result file")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-sizes", type=lambda s: [int(x) for x in s.split(",")], default=[1, 10, 100],
                        help="comma-separated statements per request (default: 1,10,100)")
    parser.add_argument("--concurrency", type=lambda s: [int(x) for x in s.split(",")], default=[],
                        help="concurrent clients: one number for every batch size, or one per batch size "
                             "(default: 32 for batch 1, 8 otherwise)")
    parser.add_argument("--duration", type=float, default=20.0, help="measured seconds per run (default: 20)")
    parser.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds first (default: 3)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="runs per batch size, summarised by their median (default: 1)")
    parser.add_argument("--learners", type=int, default=0, metavar="N",
                        help="a population of N learners, each named the same way in every statement, drawn at "
                             "random (default 0: a new learner name in every statement, the worst case for sealing)")
    parser.add_argument("--first-sights", type=float, default=0.0, metavar="SHARE",
                        help="with --learners: this share of statements name a learner never named before")
    parser.add_argument("--warm-passes", type=int, default=0, metavar="K",
                        help="with --learners: first name every learner K times (not measured): the steady state")
    parser.add_argument("--seed", type=int, default=1, help="with --learners: the draws' random seed (default 1)")
    parser.add_argument("--count-ended-backends", action="store_true",
                        help="with --start-service: also record and print the CPU per statement counting the "
                             "processes that ended during a run (PostgreSQL backends, autovacuum workers: "
                             "process_cpu.ServiceCpu(ended=True)); the default figure leaves them out, as every "
                             "earlier result did")
    add_service_options(parser, "ingest")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.repeat < 1:
        print("bench: --repeat must be at least 1", file=sys.stderr)
        return 2
    if args.learners < 0 or not 0.0 <= args.first_sights < 1.0 or args.warm_passes < 0:
        print("bench: --learners and --warm-passes must not be negative, --first-sights is a share below 1",
              file=sys.stderr)
        return 2
    if (args.first_sights or args.warm_passes) and not args.learners:
        print("bench: --first-sights and --warm-passes need --learners", file=sys.stderr)
        return 2
    if len(args.concurrency) > 1 and len(args.concurrency) != len(args.batch_sizes):
        print("bench: give one --concurrency value, or one per batch size", file=sys.stderr)
        return 2
    try:
        import uvloop
    except ImportError:
        return run_stoppable(main_async(args), "ingest")
    return run_stoppable(main_async(args), "ingest", uvloop.run)


if __name__ == "__main__":
    sys.exit(main())
