"""The group-commit writer's task (:mod:`lrs.store.writer`) started,
started again after a backoff when it ends unexpectedly (failing what
waits on it), and stopped; the committed head re-read for a shared log,
and a commit announced alone."""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg
import structlog

from lrs import metrics
from lrs.store.commit_notifications import NOTIFY_HEAD
from lrs.store.group_commit_sql import SELECT_HEAD, SELECT_HEAD_STORED
from lrs.store.kept_connection import release
from lrs.store.writer_state import WriterFailedError, WriterState
from lrs.tasks import cancel_and_wait

__all__ = ["STABLE_S", "WriterLifecycle"]


# A task that ran this long before it ended starts again after the first
# backoff; one that ends sooner waits twice as long as the time before.
STABLE_S = 60.0

log = structlog.get_logger(__name__)


class WriterLifecycle(WriterState):
    """Start, restart and close of the writer's task."""

    async def start(self) -> None:
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(SELECT_HEAD)
        self._last_position = row["position"]
        self._last_stored = row["stored"]
        self._head_seen_at = self._left_transaction_at = asyncio.get_running_loop().time()
        self._start_task()
        if self._shared_log:
            self._refresher = asyncio.create_task(self._refresh_head(), name="lrs-writer-head")

    def _start_task(self) -> None:
        self._started_at = asyncio.get_running_loop().time()
        self._task = asyncio.create_task(self._run(), name="lrs-statement-writer")
        self._task.add_done_callback(self._task_ended)

    def _task_ended(self, task: asyncio.Task[None]) -> None:
        """The task returns only when closing; any other end (an exception
        that escaped the loop, a cancellation) fails what waits on it and
        starts it again after a backoff."""
        if task.cancelled():
            error = "cancelled"
        elif task.exception() is not None:
            error = repr(task.exception())
        elif self._closing:
            return
        else:
            error = "returned"
        log.error("statement writer task ended; failing its requests and restarting it", error=error, alert=True)
        self._fail_waiting(WriterFailedError(f"the statement writer stopped unexpectedly ({error}); retry"))
        if self._closing:
            return
        self.failure = error
        self.restarts += 1
        metrics.STATEMENT_WRITER_RESTARTS.inc()
        self._restarter = asyncio.get_running_loop().create_task(self._restart(), name="lrs-statement-writer-restart")

    def _fail_waiting(self, error: Exception) -> None:
        waiting = [*self._group, *self._queue]
        self._group = []
        self._queue.clear()
        self._queued_statements = 0
        self._unannounced = 0
        self._committing = 0
        self._committing_statements = 0
        self._committing_min_stored = None
        for item in waiting:
            if not item.future.done():
                item.future.set_exception(error)

    async def _restart(self) -> None:
        loop = asyncio.get_running_loop()
        if loop.time() - self._started_at >= STABLE_S:
            self._backoff = self._first_backoff
        delay, self._backoff = self._backoff, min(self._backoff * 2, self._max_backoff)
        try:
            if self._held is not None:
                # the transaction a COMMIT began for a group the task never wrote
                held, self._held = self._held, None
                await release(self._group_pool, held)
            await asyncio.sleep(delay)
            if not self._closing:
                self._start_task()
                log.info("statement writer restarted", restarts=self.restarts)
        finally:
            self._restarter = None

    async def _refresh_head(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            # This writer's own commits tell the committed head as well: the
            # head is re-read only when none did for head_refresh_s (a pooled
            # query and the pool's reset, ten times a second, cost a busy
            # worker about 5 % of its time).
            wait = self._head_seen_at + self._head_refresh_s - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            self._head_seen_at = loop.time()
            try:
                stored = await self._pool.fetchval(SELECT_HEAD_STORED)
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
                continue  # the writer's own errors are reported by append()
            if stored is not None and (self._last_stored is None or stored > self._last_stored):
                self._last_stored = stored

    async def close(self) -> None:
        """Stop accepting; commit (or fail) everything already accepted."""
        self._closing = True
        self._wakeup.set()
        self._full.set()
        restarter, self._restarter = self._restarter, None
        await cancel_and_wait(restarter)
        if self._task is not None:
            task, self._task = self._task, None
            # one that ended unexpectedly was reported (and its requests failed) when it did
            await asyncio.wait([task])
        if self._held is not None:
            held, self._held = self._held, None
            await release(self._group_pool, held)
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
            self._refresher = None
        if self._announcer is not None:
            await self._announcer.close()

    async def _announce_alone(self, position: int) -> None:
        async with self._group_pool.acquire() as conn:
            await conn.execute(NOTIFY_HEAD, str(position))
