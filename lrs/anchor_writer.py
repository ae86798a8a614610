"""Sign the log head every N events or T seconds and append the anchor to
the anchors file (lrs.anchors).  Runs beside the relay.  It holds no lock
and no connection between anchors: several writers (replicas, each with its
own file) only make more copies of the same kind of evidence, and a
database restart costs it nothing but one failed attempt."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from pathlib import Path

import asyncpg
import structlog
from prometheus_client import Counter, Gauge

from lrs import anchors
from lrs.store.log_reader import head
from lrs.tasks import cancel_and_wait

log = structlog.get_logger("lrs.anchors")

ANCHORED_POSITION = Gauge("lrs_anchor_position", "Log position of the last signed anchor written")
ANCHOR_FAILURES = Counter("lrs_anchor_failures", "Anchors that could not be signed or written")


class AnchorWriter:
    def __init__(
        self,
        pool: asyncpg.Pool,
        key_path: Path,
        anchors_path: Path,
        *,
        every_events: int = 10_000,
        every_s: float = 60.0,
        retry_interval: float = 5.0,
    ) -> None:
        self._pool = pool
        self.key_path = key_path
        self.anchors_path = anchors_path
        self.every_events = every_events
        self.every_s = every_s
        self._retry_interval = retry_interval
        self._key = anchors.load_or_create_key(key_path)
        self.last_position = anchors.last_anchored_position(anchors_path)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def enabled(self) -> bool:
        return self.every_events > 0 or self.every_s > 0

    def notify(self, position: int | None = None) -> None:
        """Writer commit hook: wake when ``every_events`` events wait to be anchored."""
        if position is not None and self.every_events and position - self.last_position >= self.every_events:
            self._wake.set()

    async def anchor_now(self) -> anchors.Anchor | None:
        """Sign and append the current log head, unless it is already anchored."""
        position, hash_ = await head(self._pool)
        if position <= self.last_position:
            return None
        anchor = anchors.sign(self._key, position, hash_, datetime.now(timezone.utc))
        anchors.append_anchor(self.anchors_path, anchor)
        self.last_position = position
        ANCHORED_POSITION.set(position)
        log.info("anchor.written", position=position, key_id=anchor.key_id)
        return anchor

    async def start(self) -> None:
        if self.enabled and (self._task is None or self._task.done()):
            self._task = asyncio.create_task(self.run(), name="anchors")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)

    async def run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), self.every_s if self.every_s > 0 else None)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()
            try:
                await self.anchor_now()
            except Exception as exc:  # noqa: BLE001 - an anchor writer must not die
                ANCHOR_FAILURES.inc()
                log.error("anchor.failed", error=repr(exc), alert=True)
                await asyncio.sleep(self._retry_interval)
