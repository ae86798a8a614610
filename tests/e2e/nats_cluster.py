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
from typing import Any

import aiohttp
import nats
import nats.errors
import nats.js.errors

from lrs.runtime._process import free_port, log_tail, spawn, terminate
from lrs.runtime.nats import find_nats_server
from tests.e2e.unstarved_time import cpu_wait_s

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

    async def start(self, timeout: float = 60.0, only: set[str] | None = None) -> None:
        """Start every member (those named in ``only``, if given) and wait for them."""
        binary = find_nats_server()
        for member in self.members:
            if only is not None and member.name not in only:
                continue
            member.store_dir.mkdir(parents=True, exist_ok=True)
            member.process = await spawn(
                [str(binary), "-c", str(CLUSTER_CONF)], log_path=member.log_path,
                death_signal=signal.SIGKILL, env=self._environment(member),
            )
        await self.wait_ready(timeout)

    async def wait_ready(self, timeout: float) -> None:
        """Every running member answers /healthz and a JetStream API request
        (the cluster has a meta leader).

        The bound is ``timeout`` plus the longest any member's thread waited
        for a CPU meanwhile, that allowance at most ``timeout`` itself
        (tests/README.md "Tests that hold on a loaded machine"): a Raft
        election is timed by the members' clocks (4-9 s election timeout, 1 s
        heartbeat, built into nats-server), and a member kept off the CPUs
        misses its rounds.  A cluster that never forms fails at ``timeout`` on
        a quiet machine and by twice that on any; the failure shows what each
        member saw (its routes, its meta leader)."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        waited_before = {m.name: _longest_cpu_wait_s(m) for m in self.members if m.running}
        async with aiohttp.ClientSession() as session:
            for member in self.members:
                if not member.running:
                    continue
                while not await _serves_jetstream(session, member):
                    if member.process is not None and member.process.returncode is not None:
                        raise RuntimeError(f"{member.name} exited:\n{log_tail(member.log_path)}")
                    starved = max((_longest_cpu_wait_s(m) - waited_before.get(m.name, 0.0)
                                   for m in self.members if m.running), default=0.0)
                    waited = loop.time() - started
                    if waited > timeout + min(starved, timeout):
                        states = [await _cluster_state(session, m) for m in self.members if m.running]
                        raise TimeoutError(
                            f"{member.name} not ready after {waited:.0f} s ({starved:.1f} s of it a member's thread "
                            f"waited for a CPU): " + "; ".join(states) + f"\n{log_tail(member.log_path)}")
                    await asyncio.sleep(0.2)

    def kill(self, name: str) -> None:
        member = self.member(name)
        assert member.process is not None
        member.process.kill()

    async def stop(self) -> None:
        for member in self.members:
            if member.process is not None:
                await terminate(member.process, signal.SIGTERM, grace_s=10)

    async def stream_leader(self, stream: str, patience_s: float = 60.0) -> str:
        info = await self._stream_info(stream, patience_s)
        assert info.cluster is not None and info.cluster.leader
        return info.cluster.leader

    async def stream_replicas(self, stream: str) -> int:
        return (await self._stream_info(stream)).config.num_replicas or 1

    async def _stream_info(self, stream: str, patience_s: float = 60.0) -> Any:
        """The stream's info, asked again while the cluster drops the request
        (a stream group electing its leader does not answer)."""
        deadline = asyncio.get_running_loop().time() + patience_s
        nc = await nats.connect(servers=self.urls)
        try:
            while True:
                try:
                    return await nc.jetstream().stream_info(stream)
                except (nats.errors.TimeoutError, nats.errors.NoRespondersError, nats.js.errors.ServiceUnavailableError):
                    if asyncio.get_running_loop().time() > deadline:
                        raise
                    await asyncio.sleep(0.5)
        finally:
            await nc.close()

    async def __aenter__(self) -> "NatsCluster":
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def _longest_cpu_wait_s(member: Member) -> float:
    """The longest time any one thread of ``member`` has waited for a CPU
    (``/proc/<pid>/task/*/schedstat``): threads wait side by side, so their
    sum would count one stall several times."""
    if member.process is None:
        return 0.0
    longest = 0.0
    for stat in Path(f"/proc/{member.process.pid}/task").glob("*/schedstat"):
        try:
            longest = max(longest, cpu_wait_s(stat))
        except (OSError, IndexError, ValueError):  # a thread that ended meanwhile
            continue
    return longest


async def _cluster_state(session: aiohttp.ClientSession, member: Member) -> str:
    """What ``member`` sees: the peers its routes reach, and its meta leader."""
    base = f"http://{HOST}:{member.monitor_port}"
    try:
        async with session.get(f"{base}/routez") as response:
            routes = await response.json()
        async with session.get(f"{base}/jsz") as response:
            meta = (await response.json()).get("meta_cluster", {})
    except (aiohttp.ClientError, OSError, ValueError) as error:
        return f"{member.name}: monitoring unanswered ({error!r})"
    peers = sorted({route.get("remote_name", "?") for route in routes.get("routes") or []})
    return (f"{member.name}: routes to {peers or 'none'}, meta leader {meta.get('leader') or 'none'} "
            f"of {meta.get('cluster_size', '?')}")


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
