"""``lrs serve`` restarts its embedded PostgreSQL and nats-server when they die.

Under a steady load of POSTs, each server in turn gets SIGKILL.  Checked with
the history of acknowledged statements: every statement answered 200 is later
in the log, readable through the API and on the stream exactly once; service
resumes within 30 s of each kill; ``/ready`` answers 503 while the server is
down and 200 again afterwards; the projection catches up with the log.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path
from typing import AsyncIterator

import aiohttp
import asyncpg
import pytest

from lrs.eventlog import verify_chain
from lrs.runtime.nats import EmbeddedNats
from lrs.runtime.postgres import running_server_url
from tests.conftest import keep_every_message
from tests.e2e.conftest import KEY, SECRET, ServiceProcess, free_port
from tests.e2e.history import assert_exactly_once, log_rows, post_loop, read_all_statement_ids
from tests.e2e.jetstream import wait_for_stream

pytestmark = pytest.mark.slow

RESUME_WITHIN_S = 30.0


@pytest.fixture
async def service() -> AsyncIterator[ServiceProcess]:
    """``lrs serve`` with its embedded servers under a short data dir in /tmp."""
    data_dir = Path(tempfile.mkdtemp(prefix="lrs-sup-", dir="/tmp"))
    env = {name: value for name, value in os.environ.items() if not name.startswith("LRS_")}
    env.update(LRS_DATA_DIR=str(data_dir / "data"), LRS_HTTP_PORT=str(free_port()), LRS_LOG_LEVEL="warning",
               LRS_BOOTSTRAP_CREDENTIAL=f"{KEY}:{SECRET}")
    service = ServiceProcess(env, data_dir / "serve.log", port_picked_here=True)
    try:
        yield service
    finally:
        if service.process is not None and service.process.returncode is None:
            os.killpg(service.process.pid, signal.SIGKILL)
            await service.process.wait()
        shutil.rmtree(data_dir, ignore_errors=True)


class ReadyWatch:
    """Polls /ready and keeps (time, status) for every answer."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.answers: list[tuple[float, int]] = []

    async def run(self, stop: asyncio.Event) -> None:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
            while not stop.is_set():
                try:
                    async with session.get(self.base_url + "/ready") as response:
                        self.answers.append((time.monotonic(), response.status))
                except (aiohttp.ClientError, asyncio.TimeoutError):
                    self.answers.append((time.monotonic(), 0))
                await asyncio.sleep(0.1)

    async def outage_after(self, since: float) -> tuple[float, float]:
        """(first non-200 after ``since``, first 200 after that), waiting for both."""
        deadline = since + RESUME_WITHIN_S + 10
        while time.monotonic() < deadline:
            later = [(t, status) for t, status in self.answers if t > since]
            down = next((t for t, status in later if status != 200), None)
            if down is not None:
                up = next((t for t, status in later if t > down and status == 200), None)
                if up is not None:
                    return down, up
            await asyncio.sleep(0.1)
        raise AssertionError(f"/ready did not go down and up again: {self.answers[-20:]}")


def _server_pid(data_dir: Path, server: str) -> int:
    if server == "postgres":
        return int((data_dir / "postgres" / "pgdata" / "postmaster.pid").read_text().split()[0])
    marker = str(data_dir / "nats" / "store").encode()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if argv and argv[0].endswith(b"nats-server") and marker in argv:
                return int(entry.name)
    raise AssertionError("no nats-server process found")


async def _wait_for(condition, timeout: float, what: str) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, f"{what} not within {timeout} s"
        await asyncio.sleep(0.2)


async def test_killed_embedded_servers_are_restarted_and_nothing_acknowledged_is_lost(
    service: ServiceProcess,
) -> None:
    data_dir = Path(service.env["LRS_DATA_DIR"])
    await service.start()
    # The stream keeps messages for its consumers only: one that keeps them all, for the exactly-once check.
    await keep_every_message(EmbeddedNats(data_dir / "nats").url)
    acked: list[str] = []
    errors: list[str] = []
    stop = asyncio.Event()
    watch = ReadyWatch(service.base_url)
    tasks = [asyncio.create_task(post_loop(service.base_url, acked, errors, stop, batch=5)) for _ in range(4)]
    tasks.append(asyncio.create_task(watch.run(stop)))
    try:
        for server in ("postgres", "nats"):
            await _wait_for(lambda n=len(acked): _true(len(acked) >= n + 300), 60, f"300 acks before killing {server}")
            pid = _server_pid(data_dir, server)
            killed_at = time.monotonic()
            os.kill(pid, signal.SIGKILL)
            down, up = await watch.outage_after(killed_at)
            assert up - killed_at < RESUME_WITHIN_S, f"{server}: /ready back after {up - killed_at:.1f} s"
            assert _server_pid(data_dir, server) != pid
            acked_when_up = len(acked)
            await _wait_for(lambda n=acked_when_up: _true(len(acked) >= n + 100), RESUME_WITHIN_S,
                            f"ingest after the {server} restart")
    finally:
        stop.set()
        await asyncio.gather(*tasks)

    # While PostgreSQL was down, refusals were 503 (storage unavailable), never another 5xx.
    assert {error.split(":")[0] for error in errors} <= {"503", "ServerDisconnectedError", "ClientOSError"}, errors[:5]
    database_url = running_server_url(data_dir / "postgres", "lrs")
    assert database_url is not None
    rows = await log_rows(database_url)
    assert verify_chain(rows) is None
    readable = await read_all_statement_ids(service.base_url)
    assert [sid for sid in acked if readable[sid] != 1] == [], "acknowledged statements not readable exactly once"
    nats_url = EmbeddedNats(data_dir / "nats").url  # the running server's address, as its own files give it
    streamed = await wait_for_stream(nats_url, len(rows))
    assert_exactly_once(acked, rows, streamed)

    async def projection_caught_up() -> bool:
        conn = await asyncpg.connect(database_url)
        try:
            position = await conn.fetchval("SELECT position FROM projection_checkpoints WHERE name = 'competency'")
        finally:
            await conn.close()
        return position == rows[-1].position

    await _wait_for(projection_caught_up, 60, "the projection at the log head")
    assert await service.stop() == 0


async def _true(value: bool) -> bool:
    return value
