"""The HTTP worker's own CPU per single-statement POST, without PostgreSQL.

``bench/ingest.py`` measures the whole service, where a worker's CPU a
request (about 270-290 µs at batch 1) mixes the request path with the group
commit's round trips, and where the machine's noise (other processes,
PostgreSQL's own variance) is larger than most of what the request path
costs.  This bench measures the request path alone: it serves the real
application (``lrs.http.app.create_app``: every middleware, the
``on_response_prepare`` hooks, the real ``POST /xapi/statements`` handler
with its parsing, validation and preparation) in a process of its own, with
the group-commit writer replaced by one that encodes each statement's stored
form (as the real ``StatementWriter.append`` does in the request's task) and
answers on the next turn of the event loop, and drives it over loopback with
the same minimal HTTP/1.1 client as ``bench/ingest.py``.  It reports the
server process's CPU (user + system, from ``/proc``) per request, so the
figures hold however busy the machine is, and requests a second.

No database, no NATS and no sealing (the learner keys need PostgreSQL):
the figure is what the HTTP layer and the handler cost, the part issue 19's
batch-1 target leaves to this process besides the group commit.

    .venv/bin/python bench/http_request_path.py                        # this checkout
    .venv/bin/python bench/http_request_path.py --tree /work/wt/base   # another checkout, its own venv
    .venv/bin/python bench/http_request_path.py --ab /work/wt/base --rounds 3   # alternated, both recorded

The rate limit's shared bucket (PostgreSQL) is replaced by one that always
grants the lease asked for; every setting is the default but sealing (off).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
KEY, SECRET = "bench", "bench-secret-0123456789"


# -- the server (runs in the checkout under test, with its venv) ---------------------------


def _serve(port: int, ready_fd: int) -> None:
    import uvloop
    from aiohttp import web

    from lrs.auth import Credential, hash_secret
    from lrs.commands.common import settle_heap
    from lrs.batching import AppendResult, statement_form
    from lrs.config import Settings
    from lrs.http import keys
    from lrs.http.app import create_app
    from lrs.http.authn import Authenticator
    from lrs.http.throttle import AUTH_THROTTLE
    from lrs.logs import configure_logging
    from lrs.store.gathering import Gathering
    from lrs.store.group_columns import key_literal

    env = {**os.environ, "LRS_SEAL_PERSONAL_DATA": "false"}
    settings = Settings.from_env(env)
    configure_logging(settings.log_level)

    from datetime import datetime, timezone

    CONSISTENT_THROUGH = datetime(2026, 12, 6, tzinfo=timezone.utc)

    class HandOffWriter:
        """What the handler sees of the group-commit writer: encodes each
        statement's stored form in the request's task, answers on the next
        turn of the loop (the writer task's wake-up), never touches a database."""

        key_epoch = 0
        pending_statements = 0

        def __init__(self) -> None:
            self.position = 0
            self.committed: list = []
            # The real writer's announcements (lrs.store.gathering), kept as it keeps them.
            self.gathering = Gathering(lambda: None)

        def consistent_through(self):
            return CONSISTENT_THROUGH

        def arrival(self, client):
            return self.gathering.arrival(client)

        async def append(self, tenant, statements, *, defines=False, key_epoch=None, key_refs=frozenset(),
                         ciphertexts={}, new_keys={}, unconfirmed_keys={}, unconfirmed_since=None, arrival=None):
            forms = tuple(statement_form(s, key_literal) for s in statements)
            if arrival is not None:
                arrival.reached()
            loop = asyncio.get_running_loop()
            future = loop.create_future()
            results = []
            stored = self.consistent_through()
            for statement, _form in zip(statements, forms):
                self.position += 1
                results.append(AppendResult(statement.statement_id, True, stored, self.position))
            loop.call_soon(future.set_result, results)
            try:
                return await future
            finally:
                if arrival is not None:
                    self.gathering.answered([arrival.client])

    class LeasePool:
        """The rate limit's shared bucket, always granting what is asked:
        the limiter's per-request work is measured, not PostgreSQL's."""

        async def fetchrow(self, _query, _key, _rate, _burst, want):
            return {"granted": want, "tokens": 0.0}

    app = create_app(settings, database_url="postgresql://unused", nats_url=None)
    from lrs.http import shedding

    # Only the load-shedding monitor stays: the other contexts open the database, NATS and the writer.
    app.cleanup_ctx[:] = [ctx for ctx in app.cleanup_ctx if ctx is shedding.loop_lag_monitor]
    app.pop(AUTH_THROTTLE, None)  # the first request's slow check needs no failure counts
    stored_hash = hash_secret(SECRET)
    credential = Credential(key=KEY, tenant="default", scopes=frozenset({"all"}), name=KEY)

    async def fetch(key: str):
        return (stored_hash, credential) if key == KEY else None

    app[keys.AUTHENTICATOR] = Authenticator(fetch, cache_ttl=3600)
    app[keys.WRITER] = HandOffWriter()
    app[keys.POOL] = LeasePool()

    async def cpu_handler(request: web.Request) -> web.Response:
        times = os.times()
        return web.json_response({"cpu_s": times.user + times.system})

    app.router.add_get("/bench/cpu", cpu_handler)

    async def main() -> None:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", port)
        await site.start()
        settle_heap()  # as `lrs serve` does once started
        os.write(ready_fd, b"ready\n")
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    uvloop.run(main())


# -- the load generator (this checkout) -------------------------------------------------


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _cpu(port: int, auth: str) -> float:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET /bench/cpu HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nConnection: close\r\n\r\n".encode())
    data = await reader.read()
    writer.close()
    return float(json.loads(data.split(b"\r\n\r\n", 1)[1])["cpu_s"])


async def _drive(port: int, concurrency: int, duration: float, warmup: float) -> dict:
    import base64

    sys.path.insert(0, str(HERE))
    from ingest import _Bodies, _Connection  # the same client and bodies as the ingest bench

    auth = "Basic " + base64.b64encode(f"{KEY}:{SECRET}".encode()).decode()
    bodies = _Bodies(1, 5000)
    conns = [_Connection("127.0.0.1", port, "/xapi/statements", auth) for _ in range(concurrency)]
    await conns[0].post(bodies.next())  # the slow secret check, once
    latencies: list[float] = []
    errors: dict[str, int] = {}
    count = [0]
    state = {"measuring": False}

    async def client(conn) -> None:
        while not state.get("stop"):
            started = time.perf_counter()
            status = await conn.post(bodies.next())
            if status != 200:
                errors[str(status)] = errors.get(str(status), 0) + 1
            elif state["measuring"]:
                latencies.append(time.perf_counter() - started)
                count[0] += 1
        conn.close()

    tasks = [asyncio.create_task(client(c)) for c in conns]
    await asyncio.sleep(warmup)
    cpu0, wall0, own0 = await _cpu(port, auth), time.perf_counter(), os.times()
    state["measuring"] = True
    await asyncio.sleep(duration)
    state["measuring"] = False
    cpu1, wall1, own1 = await _cpu(port, auth), time.perf_counter(), os.times()
    state["stop"] = True
    await asyncio.gather(*tasks)
    latencies.sort()
    n = count[0]
    return {
        "requests": n,
        "requests_per_s": round(n / (wall1 - wall0), 1),
        "server_cpu_us_per_request": round((cpu1 - cpu0) / n * 1e6, 2) if n else None,
        "client_cpu_us_per_request": round(((own1.user + own1.system) - (own0.user + own0.system)) / n * 1e6, 2)
        if n else None,
        "p50_ms": round(latencies[n // 2] * 1000, 2) if n else None,
        "p99_ms": round(latencies[int(n * 0.99)] * 1000, 2) if n else None,
        "errors": errors,
    }


def run_tree(tree: Path, concurrency: int, duration: float, warmup: float) -> dict:
    from process_cpu import load_average

    python = tree / ".venv" / "bin" / "python"
    port = _free_port()
    read_fd, write_fd = os.pipe()
    env = {**os.environ, "PYTHONPATH": str(tree), "LRS_LOG_LEVEL": os.environ.get("LRS_LOG_LEVEL", "warning")}
    proc = subprocess.Popen(
        [str(python), str(Path(__file__).resolve()), "--serve", str(port), "--ready-fd", str(write_fd)],
        cwd=tree, env=env, pass_fds=(write_fd,),
    )
    os.close(write_fd)
    try:
        with os.fdopen(read_fd) as ready:
            if ready.readline().strip() != "ready":
                raise RuntimeError(f"the server of {tree} did not start")
        load = load_average()
        figures = asyncio.run(_drive(port, concurrency, duration, warmup))
        figures |= {"tree": str(tree), "load_before": load, "load_after": load_average()}
        return figures
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--ready-fd", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--tree", type=Path, default=HERE.parent, help="checkout whose service runs (its .venv)")
    parser.add_argument("--ab", type=Path, help="a second checkout, run alternately with --tree")
    parser.add_argument("--rounds", type=int, default=1, help="alternated rounds (with --ab)")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    sys.path.insert(0, str(HERE))
    from run_record import add_result_options, branch, machine, write_result

    add_result_options(parser)
    args = parser.parse_args(argv)
    if args.serve is not None:
        _serve(args.serve, args.ready_fd)
        return 0
    trees = [args.tree] + ([args.ab] if args.ab else [])
    runs = []
    for round_ in range(args.rounds):
        order = trees if round_ % 2 == 0 else trees[::-1]
        for tree in order:
            figures = run_tree(tree.resolve(), args.concurrency, args.duration, args.warmup)
            figures["round"] = round_ + 1
            figures["commit"] = machine(tree)["commit"]
            runs.append(figures)
            print(f"{tree} ({figures['commit']}): {figures['requests_per_s']:,.0f} requests/s, server "
                  f"{figures['server_cpu_us_per_request']} µs CPU a request, p50 {figures['p50_ms']} ms, "
                  f"p99 {figures['p99_ms']} ms, client {figures['client_cpu_us_per_request']} µs, "
                  f"load {figures['load_before']} errors {figures['errors']}", flush=True)
    summary = {}
    for tree in trees:
        mine = [r["server_cpu_us_per_request"] for r in runs if r["tree"] == str(tree.resolve())]
        # The lowest is the figure least inflated by other processes (a busy
        # machine raises every run's CPU a request, through caches and
        # frequency, never lowers it); the median is kept beside it.
        summary[str(tree.resolve())] = {"server_cpu_us_per_request_min": min(mine),
                                        "server_cpu_us_per_request_median": statistics.median(mine),
                                        "runs": mine}
    print(json.dumps(summary, indent=1))
    if not args.no_write:
        record = {"bench": "http_request_path", "concurrency": args.concurrency, "duration_s": args.duration,
                  "log_level": os.environ.get("LRS_LOG_LEVEL", "warning"), "sealing": False,
                  "note": args.note, "machine": machine(), "runs": runs, "summary": summary}
        write_result(record, "http_request_path", args.label or branch())
    return 0


if __name__ == "__main__":
    sys.exit(main())
