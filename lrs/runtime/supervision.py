"""Restart an embedded server that dies, with backoff.

``lrs serve`` runs its private PostgreSQL and nats-server as children.  If one
of them dies (a crash, the OOM killer, a stray ``kill -9``), a
:class:`Supervisor` starts it again on the same data directory and port, so
clients reconnect to the same URL: the statement writer's pool reconnects,
the relay resyncs and republishes whatever the stream lost, the projection
resumes from its checkpoint.  Attempts are spaced by a doubling backoff
(0.5 s up to 10 s), reset once the server has stayed up for a minute.
Meanwhile :attr:`Supervisor.state` is ``restarting``, which ``/ready``
reports as not ready.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

import structlog

from lrs import metrics
from lrs.tasks import cancel_and_wait

log = structlog.get_logger("lrs.supervision")

RUNNING = "running"
RESTARTING = "restarting"


class Server(Protocol):
    """What :class:`Supervisor` needs of an embedded server."""

    @property
    def pid(self) -> int | None: ...

    async def start(self) -> object: ...


class Supervisor:
    """Watches one server and starts it again whenever it is found dead."""

    def __init__(
        self,
        name: str,
        server: Server,
        *,
        poll_s: float = 0.2,
        first_backoff_s: float = 0.5,
        max_backoff_s: float = 10.0,
        stable_s: float = 60.0,
    ) -> None:
        self.name = name
        self.server = server
        self.poll_s = poll_s
        self.first_backoff_s = first_backoff_s
        self.max_backoff_s = max_backoff_s
        self.stable_s = stable_s
        self.state = RUNNING
        self.restarts = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            metrics.EMBEDDED_SERVER_UP.labels(self.name).set(1)
            self._task = asyncio.create_task(self._watch(), name=f"supervise:{self.name}")

    async def stop(self) -> None:
        """Stop watching (before the server itself is stopped on purpose)."""
        task, self._task = self._task, None
        await cancel_and_wait(task)

    async def _watch(self) -> None:
        backoff = self.first_backoff_s
        up_since = time.monotonic()
        while True:
            while self.server.pid is not None:
                await asyncio.sleep(self.poll_s)
            self.state = RESTARTING
            metrics.EMBEDDED_SERVER_UP.labels(self.name).set(0)
            if time.monotonic() - up_since >= self.stable_s:
                backoff = self.first_backoff_s
            log.error("embedded server died; restarting it", server=self.name, alert=True)
            while True:
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff_s)
                try:
                    await self.server.start()
                    break
                except Exception as exc:  # noqa: BLE001 - any failure: try again later
                    reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                    log.error("embedded server did not restart", server=self.name, error=reason, retry_in_s=backoff)
            up_since = time.monotonic()
            self.restarts += 1
            self.state = RUNNING
            metrics.EMBEDDED_SERVER_UP.labels(self.name).set(1)
            metrics.EMBEDDED_SERVER_RESTARTS.labels(self.name).inc()
            log.warning("embedded server restarted", server=self.name, pid=self.server.pid, restarts=self.restarts)
