"""End-to-end fixtures: the real HTTP service against real PostgreSQL (and NATS).

* ``client`` — the aiohttp app in process (relay off), for fast HTTP-level tests,
  with ``light_secret_hashing`` (tests/conftest.py); ``sealed_client`` likewise.
* ``service`` — ``lrs serve`` as a child process that a test may kill with
  SIGKILL or stop with SIGTERM and start again.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any, AsyncIterator

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from lrs.config import Settings
from lrs.service import create_app
from tests.ctrl_c import as_from_a_terminal

KEY, SECRET = "e2e-key", "e2e-secret-value"


def basic_auth(key: str = KEY, secret: str = SECRET) -> str:
    return "Basic " + base64.b64encode(f"{key}:{secret}".encode()).decode()


def xapi_headers(version: str = "1.0.3", key: str = KEY, secret: str = SECRET) -> dict[str, str]:
    return {"Authorization": basic_auth(key, secret), "X-Experience-API-Version": version}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.asynccontextmanager
async def app_client(database_url: str, tmp_path: Path, **extra: Any) -> AsyncIterator[TestClient]:
    """The in-process service on ``database_url`` (``extra``: more Settings);
    personal data sealed, as by default, with its key under ``tmp_path``."""
    settings = Settings(
        **{
            "database_url": database_url,
            "frameworks_dir": tmp_path / "frameworks",  # none installed: the shipped documents only
            "nats_url": None,
            "relay_enabled": False,
            "bootstrap_credential": f"{KEY}:{SECRET}",
            "page_size_default": 100,
            "page_size_max": 500,
            "privacy_key_file": tmp_path / "privacy-key",
            **extra,
        }
    )
    app = create_app(settings, database_url=database_url, nats_url=None)
    async with TestServer(app) as server, TestClient(server) as test_client:
        yield test_client


@pytest.fixture
async def client(database_url: str, tmp_path: Path, light_secret_hashing: int) -> AsyncIterator[TestClient]:
    async with app_client(database_url, tmp_path) as test_client:
        yield test_client


@pytest.fixture
async def clear_client(database_url: str, tmp_path: Path, light_secret_hashing: int) -> AsyncIterator[TestClient]:
    """The service storing personal data in clear (LRS_SEAL_PERSONAL_DATA=false),
    for the tests about the clear stored form."""
    async with app_client(database_url, tmp_path, seal_personal_data=False) as test_client:
        yield test_client


@pytest.fixture
async def sealed_client(database_url: str, tmp_path: Path, light_secret_hashing: int) -> AsyncIterator[TestClient]:
    """The service storing personal data sealed (LRS_SEAL_PERSONAL_DATA),
    said explicitly for the tests that are about it."""
    async with app_client(database_url, tmp_path, seal_personal_data=True) as test_client:
        yield test_client


PORT_IN_USE = "is already in use; stop whatever listens there"  # lrs.startup.port_in_use


class _PortTaken(RuntimeError):
    """``lrs serve`` exited because its port was taken."""


class ServiceProcess:
    """``python -m lrs serve`` in a child process, with its log in a file."""

    def __init__(self, env: dict[str, str], log_path: Path, *, port_picked_here: bool = False) -> None:
        self.env = env
        self.port = int(env["LRS_HTTP_PORT"])
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.process: asyncio.subprocess.Process | None = None
        # free_port() gives a port that nothing listens on *now*: until the child
        # binds it (seconds on a loaded machine) another process may take it,
        # e.g. as the local port of an outgoing connection. A first start refused
        # for that alone is made again on another port (the caller has not been
        # given a base_url that answered yet); a restart keeps its port.
        self._may_move = port_picked_here

    async def start(self, timeout: float = 60.0) -> None:
        for attempt in range(3):
            try:
                await self._start(timeout)
            except _PortTaken:
                if not self._may_move or attempt == 2:
                    raise
                self.port = free_port()
                self.env["LRS_HTTP_PORT"] = str(self.port)
                self.base_url = f"http://127.0.0.1:{self.port}"
            else:
                self._may_move = False
                return

    async def _start(self, timeout: float) -> None:
        logged_before = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = open(self.log_path, "ab")
        # Its own process group: kill() takes down the service and any worker
        # processes it supervises at once, as a machine crash would.
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "lrs", "serve", env=self.env, stdout=log, stderr=log, start_new_session=True,
            preexec_fn=as_from_a_terminal,  # tests may send it Ctrl-C (tests/e2e/test_serve_interrupted.py)
        )
        log.close()
        deadline = asyncio.get_running_loop().time() + timeout
        # Each probe is bounded: one sent to a port a stranger holds may get no answer.
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
            while True:
                if self.process.returncode is not None:
                    text = self.log_path.read_bytes()[logged_before:].decode("utf-8", "replace")
                    error = _PortTaken if PORT_IN_USE in text else RuntimeError
                    raise error(f"lrs serve exited with {self.process.returncode}; see {self.log_path}:\n"
                                + self.log_path.read_text()[-3000:])
                try:
                    async with session.get(self.base_url + "/ready") as response:
                        if response.status == 200:
                            return
                except (aiohttp.ClientError, asyncio.TimeoutError):
                    pass
                if asyncio.get_running_loop().time() > deadline:
                    raise TimeoutError(f"lrs serve not ready after {timeout}s; see {self.log_path}")
                await asyncio.sleep(0.1)

    def kill(self) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)

    async def stop(self) -> int:
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.process.wait(), 60)

    async def wait(self) -> int:
        assert self.process is not None
        return await self.process.wait()


@pytest.fixture
async def service_factory(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Any]:
    started: list[ServiceProcess] = []
    # Under pytest's base temp dir, which keeps the logs of the last few sessions only.
    workdir = tmp_path_factory.mktemp("service")

    def make(nats_url: str, **extra: str) -> ServiceProcess:
        env = {
            **os.environ,
            "LRS_DATABASE_URL": database_url,
            "LRS_NATS_URL": nats_url,
            "LRS_HTTP_HOST": "127.0.0.1",
            "LRS_HTTP_PORT": str(free_port()),
            "LRS_DATA_DIR": str(workdir / "data"),
            "LRS_BOOTSTRAP_CREDENTIAL": f"{KEY}:{SECRET}",
            "LRS_LOG_LEVEL": "warning",
            **extra,
        }
        service = ServiceProcess(env, workdir / f"service-{len(started)}.log",
                                 port_picked_here="LRS_HTTP_PORT" not in extra)
        started.append(service)
        return service

    yield make
    for service in started:
        if service.process is not None and service.process.returncode is None:
            service.process.kill()
            await service.process.wait()
        if service.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(service.process.pid, signal.SIGKILL)  # any worker left behind
