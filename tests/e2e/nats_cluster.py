"""A NATS JetStream cluster of real nats-server processes on loopback.

Every member runs the deployment's own configuration file,
``docs/deploy/nats/cluster.conf``, with its ports and store directory given
through the environment as docker-compose.yml gives them, so the test runs
the cluster that is shipped.
"""

from __future__ import annotations

import asyncio
import os
import signal
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import nats
import nats.errors
import nats.js.errors

from lrs.runtime._process import free_port, log_tail, spawn, terminate
from lrs.runtime.nats import find_nats_server

CLUSTER_CONF = Path(__file__).resolve().parents[2] / "docs" / "deploy" / "nats" / "cluster.conf"
HOST = "127.0.0.1"
SERVICE_PASSWORD = "cluster-service-password"
ADMIN_PASSWORD = "cluster-admin-password"


@dataclass
class Member:
    name: str
    port: int
    route_port: int
    monitor_port: int
    store_dir: Path
    log_path: Path
    process: asyncio.subprocess.Process | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"nats://{HOST}:{self.port}"

    def url_for(self, user: str, password: str) -> str:
        return f"nats://{user}:{password}@{HOST}:{self.port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None


class NatsCluster:
    """``size`` members with routes to each other.  ``.service_url`` names all
    of them with the LRS's user (comma-separated, as ``LRS_NATS_URL`` takes
    them); ``.urls`` the running ones with the admin user."""

    def __init__(self, directory: Path, size: int = 3) -> None:
        self.directory = directory
        self.members = [
            Member(
                name=f"nats-{n}", port=free_port(HOST), route_port=free_port(HOST), monitor_port=free_port(HOST),
                store_dir=directory / f"nats-{n}" / "store", log_path=directory / f"nats-{n}.log",
            )
            for n in range(1, size + 1)
        ]

    @property
    def service_url(self) -> str:
        return ",".join(m.url_for("service", SERVICE_PASSWORD) for m in self.members)

    @property
    def urls(self) -> list[str]:
        return [m.url_for("admin", ADMIN_PASSWORD) for m in self.members if m.running]

    def member(self, name: str) -> Member:
        return next(m for m in self.members if m.name == name)

    def _environment(self, member: Member) -> dict[str, str]:
        routes = {f"NATS_ROUTE_{i}": f"nats-route://{HOST}:{m.route_port}" for i, m in enumerate(self.members, 1)}
        return {
            **os.environ,
            "NATS_SERVER_NAME": member.name,
            "NATS_LISTEN": f"{HOST}:{member.port}",
            "NATS_MONITOR_LISTEN": f"{HOST}:{member.monitor_port}",
            "NATS_STORE_DIR": str(member.store_dir),
            "NATS_MAX_FILE_STORE": "1G",
            "NATS_CLUSTER_LISTEN": f"{HOST}:{member.route_port}",
            "NATS_SERVICE_PASSWORD": SERVICE_PASSWORD,
            "NATS_ADMIN_PASSWORD": ADMIN_PASSWORD,
            **routes,
        }

    async def start(self, timeout: float = 60.0) -> None:
        binary = find_nats_server()
        for member in self.members:
            member.store_dir.mkdir(parents=True, exist_ok=True)
            member.process = await spawn(
                [str(binary), "-c", str(CLUSTER_CONF)], log_path=member.log_path,
                death_signal=signal.SIGKILL, env=self._environment(member),
            )
        await self.wait_ready(timeout)

    async def wait_ready(self, timeout: float) -> None:
        """Every running member answers /healthz and a JetStream API request
        (the cluster has a meta leader)."""
        deadline = asyncio.get_running_loop().time() + timeout
        async with aiohttp.ClientSession() as session:
            for member in self.members:
                if not member.running:
                    continue
                while not await _serves_jetstream(session, member):
                    if member.process is not None and member.process.returncode is not None:
                        raise RuntimeError(f"{member.name} exited:\n{log_tail(member.log_path)}")
                    if asyncio.get_running_loop().time() > deadline:
                        raise TimeoutError(f"{member.name} not ready after {timeout}s:\n{log_tail(member.log_path)}")
                    await asyncio.sleep(0.2)

    def kill(self, name: str) -> None:
        member = self.member(name)
        assert member.process is not None
        member.process.kill()

    async def stop(self) -> None:
        for member in self.members:
            if member.process is not None:
                await terminate(member.process, signal.SIGTERM, grace_s=10)

    async def stream_leader(self, stream: str) -> str:
        nc = await nats.connect(servers=self.urls)
        try:
            info = await nc.jetstream().stream_info(stream)
        finally:
            await nc.close()
        assert info.cluster is not None and info.cluster.leader
        return info.cluster.leader

    async def stream_replicas(self, stream: str) -> int:
        nc = await nats.connect(servers=self.urls)
        try:
            info = await nc.jetstream().stream_info(stream)
        finally:
            await nc.close()
        return info.config.num_replicas or 1

    async def __aenter__(self) -> "NatsCluster":
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


async def _serves_jetstream(session: aiohttp.ClientSession, member: Member) -> bool:
    try:
        async with session.get(f"http://{HOST}:{member.monitor_port}/healthz") as response:
            if response.status != 200:
                return False
        nc = await nats.connect(member.url_for("admin", ADMIN_PASSWORD), connect_timeout=1, allow_reconnect=False)
    except (aiohttp.ClientError, OSError, nats.errors.Error):
        return False
    try:
        await nc.jetstream(timeout=2).account_info()
        return True
    except (nats.errors.Error, nats.js.errors.Error, asyncio.TimeoutError):
        return False
    finally:
        await nc.close()
