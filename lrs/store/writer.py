"""Group commit: concurrent append requests share one durable transaction.

``append`` enqueues a request and waits.  One writer task takes what is
queued (waiting up to ``wait_ms`` for more, up to ``max_statements``, and
no longer once waiting cannot make the group larger: every request
announced as it entered its handler has reached the writer, and every client
the last group answered is back, :mod:`lrs.store.gathering`) and commits
it in ONE transaction:

1. fetch the stored statements the group touches (one query per tenant),
   noting the head position first, without any lock;
2. insert the learner keys the requests' processes made for identities
   they had not cached, and refuse a request sealed under a key that is not
   its identity's live one (:mod:`lrs.store.group_keys`); then lock the
   single ``log_head`` row FOR UPDATE.  This serialises writers
   across processes, so positions are gapless and in commit order; then
   fetch the touched statements committed after the noted head, if any
   (:func:`lrs.batching.merge_touched`);
3. decide every request with the pure :func:`lrs.batching.plan_group`;
4. COPY the new events and read-model rows and the new ciphertexts of
   sealed identities they name (:mod:`lrs.store.sealed_identities`), mark newly voided statements,
   merge the Activity Definitions of senders holding ``define`` into the
   canonical ones (:func:`lrs.store.activities.write_definitions`), move the
   head; COMMIT (``synchronous_commit = on``);
5. only then answer each request: its results, or its own error.

When requests are already waiting at COMMIT, or a client of the group will
likely be back with its next request (it announced itself and keeps its
connection: single-statement POSTs in lock-step), the same round trip begins
the next group's transaction and the writer keeps the connection (no BEGIN of
its own and no pool reset for the next group; a transaction begun for a group
that does not come within a second is rolled back); a transaction runs its statements
on cached generic plans once the log is long enough for them to be index
lookups, and plans them at every execution before
(:func:`lrs.store.group_commit_sql.begin_group` says why).  The service gives
the writer its own pool for the groups' connections, not reset on release
(``group_pool``).  The SQL is in
:mod:`lrs.store.group_commit_sql`, the kept connection in
:mod:`lrs.store.kept_connection`.

:class:`StatementWriter` is made of parts that share one state
(:mod:`lrs.store.writer_state`): its task's start, restart and close
(:mod:`lrs.store.writer_lifecycle`), the queue and the gathering of a group
(:mod:`lrs.store.writer_queue`) and a group's transaction, steps 1-4
(:mod:`lrs.store.group_write`); the task's loop and step 5 are here.

A database error fails the requests of that group only; the writer goes on.
Should the writer's task itself end (a bug), the requests waiting on it get
:class:`WriterFailedError` (a 503 with ``Retry-After``), and so does every
request until the task runs again: it is started again after a backoff
(``status()`` says ``restarting`` meanwhile, and ``/ready`` is not ready).
"""

from __future__ import annotations

import asyncio
import time

import structlog

from lrs import metrics
from lrs.batching import AppendResult
from lrs.store.group_keys import KeyTakenMeanwhile
from lrs.store.group_reads import KeyErasedMeanwhile
from lrs.store.group_write import GroupWrite
from lrs.store.kept_connection import release
from lrs.store.writer_lifecycle import WriterLifecycle
from lrs.store.writer_queue import WriterQueue
from lrs.store.writer_state import Queued, WriterClosedError, WriterFailedError

__all__ = [
    "AppendResult", "KeyErasedMeanwhile", "KeyTakenMeanwhile", "StatementWriter", "WriterClosedError",
    "WriterFailedError",
]

log = structlog.get_logger(__name__)


class StatementWriter(WriterLifecycle, WriterQueue, GroupWrite):
    """Appends statements through group commit.  ``await start()`` before use,
    ``await close()`` to drain: everything accepted gets committed or an error."""

    # -- the writer task -----------------------------------------------------

    async def _run(self) -> None:
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._wakeup.clear()
                if self._held is not None:
                    await self._idle()
                else:
                    await self._wakeup.wait()
                continue
            if self._wait and not self._closing and self._queued_statements < self._max:
                await self._gather()
            group = self._take_group()
            if group:
                self._group = group
                await self._commit_group(group)
                self._group = []
            elif self._held is not None:
                # Every waiting caller went away: no group follows the
                # transaction the last COMMIT began.
                held, self._held = self._held, None
                await release(self._group_pool, held)

    async def _idle(self) -> None:
        """Nothing queued, and the last COMMIT began the next group's
        transaction (:meth:`_more_waiting`): wait for a request up to
        ``begun_hold_s``, then roll the begun transaction back and give the
        connection back, so that no session sits idle in a transaction for
        long (it holds no snapshot and no lock but its own virtual
        transaction id meanwhile).  Longer than the gathering's horizon: on a
        loaded machine a lock-stepped client's next request often reaches the
        writer more than 50 ms after its answer, and a rollback there would
        cost a round trip more than it saved; with a second, only a writer
        idle for a second pays it."""
        timer = asyncio.get_running_loop().call_later(self._begun_hold_s, self._wakeup.set)
        try:
            await self._wakeup.wait()
        finally:
            timer.cancel()
        if not self._queue and self._held is not None:
            held, self._held = self._held, None
            self.transactions_begun_unused += 1
            await release(self._group_pool, held)
    async def _commit_group(self, group: list[Queued]) -> None:
        self._committing = len(group)
        self._committing_statements = sum(len(item.request.statements) for item in group)
        started = time.perf_counter()
        try:
            plan = await self._write([item.request for item in group])
        except Exception as exc:  # noqa: BLE001 - every caller of this group gets it
            log.error("group commit failed", requests=len(group), error=repr(exc))
            for item in group:
                if not item.future.done():
                    item.future.set_exception(exc)
            self._gathering.answered(item.client for item in group)
            return
        finally:
            self._committing = 0
            self._committing_statements = 0
            self._committing_min_stored = None
        metrics.GROUP_COMMIT_SECONDS.observe(time.perf_counter() - started)
        metrics.GROUP_COMMIT_REQUESTS.observe(len(group))
        metrics.GROUP_COMMIT_STATEMENTS.observe(len(plan.new))
        if plan.head is not None:
            self._last_position = plan.head.position
            self._last_stored = plan.head.stored
            self._head_seen_at = asyncio.get_running_loop().time()
            self.groups_committed += 1
            self.statements_committed += len(plan.new)
            if self._announcer is not None:
                self._announcer.committed(plan.head.position, announced=self._group_announced)
        for item, outcome in zip(group, plan.outcomes):
            if item.future.done():
                continue
            if isinstance(outcome, Exception):
                item.future.set_exception(outcome)
            else:
                item.future.set_result(outcome)
        # Their clients are on their way back: the next group waits for them.
        self._gathering.answered(item.client for item in group)
        if plan.head is not None:
            for callback in list(self.committed):
                try:
                    callback(plan.head.position)
                except Exception as exc:  # noqa: BLE001 - a listener must not stop the writer
                    log.error("commit listener failed", error=repr(exc))
