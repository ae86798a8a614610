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

A database error fails the requests of that group only; the writer goes on.
Should the writer's task itself end (a bug), the requests waiting on it get
:class:`WriterFailedError` (a 503 with ``Retry-After``), and so does every
request until the task runs again: it is started again after a backoff
(``status()`` says ``restarting`` meanwhile, and ``/ready`` is not ready).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
import uuid
from collections import defaultdict, deque
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import AsyncIterator, Callable, Hashable, Mapping, Sequence

import asyncpg
import structlog

from lrs import metrics
from lrs.batching import (
    AppendRequest,
    AppendResult,
    ExistingStatement,
    GroupPlan,
    LogHead,
    merge_touched,
    plan_group,
    statement_form,
)
from lrs.eventlog import ONE_MICROSECOND
from lrs.ingest.model import PreparedStatement
from lrs.store.activities import LockedDefinitions, definition_slots, write_definitions
from lrs.store.availability import StorageUnavailableError
from lrs.store.commit_notifications import NOTIFY_HEAD, CommitAnnouncer
from lrs.store.gathering import Arrival, Gathering
from lrs.store.group_columns import (
    authority_keys, defined_activities, group_columns, group_definition_updates, key_literal,
)
from lrs.store.group_commit_sql import (
    INSERT_GROUP,
    SELECT_HEAD,
    SELECT_HEAD_FOR_UPDATE,
    SELECT_HEAD_POSITION,
    COUNT_STATEMENTS_EVERY,
    COUNT_STATEMENTS_UPTO,
    GENERIC_PLANS_FROM,
    SELECT_HEAD_STORED,
    SELECT_HEAD_WITH_TOUCHED_AND_DEFINITIONS,
    UPDATE_VOIDED,
    begin_group,
)
from lrs.store.group_keys import KeyTakenMeanwhile, keys_taken
from lrs.store.group_reads import (
    KeyErasedMeanwhile,
    erased_meanwhile,
    existing_statement,
    fetch_touched,
    lookup_pairs,
    touched_lookups,
)
from lrs.store.ids import TimeOrderedUuids
from lrs.store.kept_connection import connection_for_group, group_transaction, release
from lrs.store.ref_keys import add_reached_keys
from lrs.store.sealed_identities import INSERT_CIPHERTEXTS, ciphertext_columns
from lrs.store.unconfirmed_keys import session_known_since, unconfirmed_before_session
from lrs.tasks import cancel_and_wait

__all__ = [
    "AppendResult", "KeyErasedMeanwhile", "KeyTakenMeanwhile", "StatementWriter", "WriterClosedError",
    "WriterFailedError",
]


# Groups of at least this many statements look up what they touch before
# taking the head lock (see _write).
LOOKUP_AHEAD_MIN_STATEMENTS = 64

# A task that ran this long before it ended starts again after the first
# backoff; one that ends sooner waits twice as long as the time before.
STABLE_S = 60.0

log = structlog.get_logger(__name__)


class WriterClosedError(RuntimeError):
    """The writer is shutting down and accepts no new requests."""


class WriterFailedError(StorageUnavailableError):
    """The writer's task ended unexpectedly and is being started again: the
    request was not taken, or was in a group whose commit may or may not
    have happened (retrying with the same statement ids is safe)."""


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(slots=True)
class _Queued:
    request: AppendRequest
    future: asyncio.Future[list[AppendResult]]
    client: Hashable | None  # the connection that announced it (arrival), if one did


class StatementWriter:
    """Appends statements through group commit.  ``await start()`` before use,
    ``await close()`` to drain: everything accepted gets committed or an error."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        wait_ms: float = 2.0,
        max_statements: int = 5000,
        clock: Callable[[], datetime] = utc_now,
        new_event_id: Callable[[], uuid.UUID] | None = None,
        shared_log: bool = False,
        head_refresh_s: float = 0.1,
        first_restart_backoff_s: float = 0.1,
        max_restart_backoff_s: float = 5.0,
        group_pool: asyncpg.Pool | None = None,
        announce_every_s: float = 0.02,
        begun_hold_s: float = 1.0,
        stats_every_s: float = 2.0,
    ) -> None:
        self._pool = pool
        # Where each group's connection comes from and goes back to: the
        # service passes a pool that does not reset on release
        # (lrs.store.pool.create_statement_pool), since a group leaves
        # nothing in the session; the shared pool's reset would be one more
        # round trip and one more PostgreSQL transaction per group.
        self._group_pool = group_pool or pool
        # Other processes append to the same log: this process cannot see their
        # in-flight transactions, so consistent-through is the committed head.
        self._shared_log = shared_log
        # The relay of a shared log runs in another process: commits are
        # announced to it (NOTIFY lrs_log), at most one a group and about
        # one every announce_every_s (lrs.store.commit_notifications).
        self._announcer = CommitAnnouncer(
            self._announce_alone, interval_s=announce_every_s, busy=lambda: self._committing > 0
        ) if shared_log else None
        self._group_announced = False  # the group being written carries the announcement
        # How long a transaction a COMMIT began for the next group waits for
        # it before it is rolled back (_idle).
        self._begun_hold_s = begun_hold_s
        # At least this often a COMMIT begins nothing (_more_waiting).
        self._stats_every_s = stats_every_s
        self._left_transaction_at = 0.0
        self._head_refresh_s = head_refresh_s
        self._refresher: asyncio.Task[None] | None = None
        self._wait = max(wait_ms, 0.0) / 1000.0
        self._max = max(max_statements, 1)
        self._clock = clock
        self._new_event_id = new_event_id or TimeOrderedUuids()
        self._queue: deque[_Queued] = deque()
        self._queued_statements = 0
        self._wakeup = asyncio.Event()
        # Set when the group being gathered should be looked at again: the
        # queue is full, the wait is over, or the last request arriving
        # reached the writer (Gathering).
        self._full = asyncio.Event()
        self._expired = False
        # Requests announced as they enter their handler, and clients
        # expected back: the wait ends as soon as waiting cannot make the
        # group larger (lrs.store.gathering).  Queued requests nobody
        # announced keep the whole wait, as callers that do not announce
        # may be followed by more at any time.
        self._gathering = Gathering(self._arrivals_settled)
        self._gathering_group = False  # _gather is waiting on _full
        self.gather_wakeups = 0  # times a group's gathering was woken to look again
        self._unannounced = 0
        self._task: asyncio.Task[None] | None = None
        self._started_at = 0.0  # event loop time the task was started
        self._group: list[_Queued] = []  # the group being committed
        # Starts the task again after it ended unexpectedly (_task_ended).
        self._restarter: asyncio.Task[None] | None = None
        self._first_backoff = first_restart_backoff_s
        self._max_backoff = max(max_restart_backoff_s, first_restart_backoff_s)
        self._backoff = first_restart_backoff_s
        # Why the task last ended unexpectedly, and how often it did (/ready).
        self.failure: str | None = None
        self.restarts = 0
        # The connection of the last group, kept while more groups wait (_write).
        self._held: asyncpg.pool.PoolConnectionProxy | None = None
        self._closing = False
        self._committing = 0  # requests in the transaction being committed
        self._committing_statements = 0
        self._committing_min_stored: datetime | None = None
        self._floor: datetime | None = None  # highest consistent-through handed out
        # The log head this writer saw last: how a group's transaction plans (begin_group).
        self._log_position: int | None = None
        # Whether the store holds GENERIC_PLANS_FROM statements (counted at
        # log position _statements_counted_at): begin_group's log position
        # counts every event, statements or not.
        self._enough_statements = False
        self._statements_counted_at: int | None = None
        self._last_position = 0
        self._last_stored: datetime | None = None
        # When (event loop time) _last_stored was last learned from the
        # database: a commit of this writer or a re-read by _refresh_head.
        self._head_seen_at = float("-inf")
        # Called with the new last position after every commit that wrote events.
        self.committed: list[Callable[[int], None]] = []
        # Counters for metrics: transactions that wrote events, statements written.
        self.groups_committed = 0
        # Of them, those whose COMMIT began the next group's transaction.
        self.groups_chained = 0
        # Of them, those whose gathering ended before the wait was over
        # because nobody else could join (lrs.store.gathering).
        self.waits_ended_early = 0
        # Transactions a COMMIT began for a next group that did not come
        # within begun_hold_s, rolled back (_idle).
        self.transactions_begun_unused = 0
        # log_head.key_epoch as the last transaction read it (docs/privacy.md).
        self.key_epoch = 0
        self.statements_committed = 0
        # Time the log head lock was held by this writer (FOR UPDATE to
        # COMMIT), in total and, with keep_head_lock_holds, per transaction:
        # the serial part of ingest across every process appending to the log
        # (docs/scaling.md; bench/log_head_lock.py).
        self.head_lock_seconds = 0.0
        self.head_lock_holds: list[float] = []
        self.keep_head_lock_holds = False

    # -- state ---------------------------------------------------------------

    @property
    def last_position(self) -> int:
        """The highest position this writer has seen committed."""
        return self._last_position

    @property
    def in_flight(self) -> int:
        """Requests accepted and not answered yet."""
        return len(self._queue) + self._committing

    @property
    def pending_statements(self) -> int:
        """Statements accepted and not committed yet (waiting or being committed)."""
        return self._queued_statements + self._committing_statements

    @property
    def in_flight_min_stored(self) -> datetime | None:
        """The lowest ``stored`` assigned to statements not yet committed."""
        return self._committing_min_stored

    def consistent_through(self) -> datetime:
        """A time T such that every statement this process stores with
        ``stored <= T`` is already committed (X-Experience-API-Consistent-Through).

        Statements assigned later always get ``stored`` above every T handed
        out, so the answer never goes stale.

        With a shared log (several processes appending), T is the ``stored`` of
        the last committed head this process has seen (its own commits, and a
        re-read every ``head_refresh_s``): ``stored`` rises with commit order,
        so everything at or below a committed head is visible.
        """
        if self._shared_log:
            return self._last_stored or datetime(1970, 1, 1, tzinfo=timezone.utc)
        if self._committing_min_stored is not None:
            return self._committing_min_stored - ONE_MICROSECOND
        moment = self._clock()
        if self._last_stored is not None and self._last_stored > moment:
            moment = self._last_stored
        if self._floor is None or moment > self._floor:
            self._floor = moment
        return self._floor

    @property
    def running(self) -> bool:
        """Whether the writer's task is running (not while closed, nor while
        it is being started again after it ended unexpectedly)."""
        return self._task is not None and not self._task.done() and not self._closing

    def status(self) -> dict[str, object]:
        """For /ready: ``running``, ``restarting`` or ``stopped``, and the last unexpected end."""
        state = "running" if self.running else "restarting" if self._restarter is not None else "stopped"
        return {"state": state, "restarts": self.restarts, "last_failure": self.failure}

    # -- lifecycle -----------------------------------------------------------

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

    async def append(
        self,
        tenant: str,
        statements: Sequence[PreparedStatement],
        *,
        defines: bool = False,
        key_epoch: int | None = None,
        key_refs: frozenset[tuple[str, int]] = frozenset(),
        ciphertexts: Mapping[bytes, bytes] = {},
        new_keys: Mapping[str, bytes] = {},
        unconfirmed_keys: Mapping[str, tuple[int, bytes]] = {},
        unconfirmed_since: float = math.inf,
        arrival: Arrival | None = None,
    ) -> list[AppendResult]:
        """Append one request's statements; returns one result per statement,
        in order, after COMMIT.  Raises ConflictError (409) or XapiError (400)
        for this request alone; database errors propagate.  ``defines``: the
        sender holds the ``define`` scope, so the Activity Definitions of its
        accepted statements update the canonical ones in the same transaction.
        ``key_epoch``, ``key_refs``: sealed Statements (:class:`lrs.batching.AppendRequest`);
        raises :class:`KeyErasedMeanwhile` when one of those keys was destroyed
        by an erasure after ``key_epoch``.  ``ciphertexts``: the v3
        ciphertexts by reference the sealed Statements name, committed with
        them (:mod:`lrs.store.sealed_identities`).  ``new_keys``: the learner
        keys (generation 1, wrapped, by pseudonym) made for them, inserted by
        the group commit; raises :class:`KeyTakenMeanwhile` when one of those
        identities has another live key (:mod:`lrs.store.group_keys`).
        ``unconfirmed_keys``, ``unconfirmed_since``: the keys it is sealed
        under not known to be on disk, proposed again by a group on a
        connection opened since (:mod:`lrs.store.unconfirmed_keys`).
        ``arrival``: the request's announcement (:meth:`arrival`), which lets
        the group commit without waiting the full ``wait_ms`` for it."""
        if self._closing or self._task is None:
            raise WriterClosedError("the statement writer is not running")
        if self._task.done():
            raise WriterFailedError("the statement writer stopped unexpectedly and is being restarted; retry")
        if not statements:
            return []
        future: asyncio.Future[list[AppendResult]] = asyncio.get_running_loop().create_future()
        # The stored JSON and the filter keys do not depend on the log head:
        # encode them now, so the group's transaction holds the head lock
        # only for what does (positions, stored, hash chain).
        forms = tuple(statement_form(statement, key_literal) for statement in statements)
        self._queue.append(_Queued(
            AppendRequest(tenant, tuple(statements), forms, defines, key_epoch, key_refs, ciphertexts, new_keys,
                          unconfirmed_keys, unconfirmed_since),
            future, None if arrival is None else arrival.client,
        ))
        self._queued_statements += len(statements)
        if arrival is None:
            self._unannounced += 1
        self._wakeup.set()
        if self._queued_statements >= self._max:
            self._full.set()
        if arrival is not None:
            arrival.reached()  # after it is queued: the group may commit at once
        try:
            return await future
        finally:
            # A refusal raised here (KeyTakenMeanwhile, a conflict) holds this
            # frame in its traceback, and the future holds the refusal: a cycle
            # that kept the request (its Statements, prepared and sealed) alive
            # until a collection found it, 100,000s of objects in a sealing
            # worker that makes keys at batch 100 (docs/privacy.md "seal-gc").
            del future

    def arrival(self, client: Hashable) -> Arrival:
        """Announce a request that will append, as it enters its handler on
        ``client`` (its connection): pass it to :meth:`append`, and
        :meth:`Arrival.close` it when the request is done (whether or not it
        appended).  While announced requests are on their way, or clients
        answered a moment ago may come back, the group waits for them (up to
        ``wait_ms``); once none is, it commits at once."""
        return self._gathering.arrival(client)

    def _may_grow(self) -> bool:
        """Whether waiting can still make the group being gathered larger."""
        return self._unannounced > 0 or self._gathering.may_grow()

    def _expire(self) -> None:
        self._expired = True
        self._full.set()

    def _arrivals_settled(self) -> None:
        """The last request arriving reached the writer or left.  While a
        group is being gathered, the writer task is woken only when the
        group may not grow any more: asked here, the answer is the one the
        task would have found on waking (its other reasons to look again,
        a full queue, the wait's end and closing, set ``_full`` themselves).
        Under single-statement POSTs nearly every request settles the
        arrivals, and waking the task for each to find the group still
        growing cost a task step per request."""
        if self._gathering_group and self._may_grow():
            return
        self._full.set()

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

    async def _gather(self) -> None:
        """Until the queue is full, the wait is over, or waiting cannot make
        the group larger (:meth:`_may_grow`), whichever comes first.  A timer
        that sets the event, not asyncio.wait_for, which made and cancelled a
        task for every group."""
        if not self._may_grow():
            self._ended_early()  # nobody else can join: no wait at all
            return
        self._expired = False
        timer = asyncio.get_running_loop().call_later(self._wait, self._expire)
        self._gathering_group = True
        try:
            while True:
                self._full.clear()
                await self._full.wait()
                self.gather_wakeups += 1
                if self._expired or self._closing or self._queued_statements >= self._max:
                    return
                if not self._may_grow():
                    self._ended_early()
                    return
        finally:
            self._gathering_group = False
            timer.cancel()

    def _ended_early(self) -> None:
        self.waits_ended_early += 1
        metrics.GROUP_COMMIT_GATHERED_EARLY.inc()

    def _take_group(self) -> list[_Queued]:
        group: list[_Queued] = []
        count = 0
        while self._queue:
            size = len(self._queue[0].request.statements)
            if group and count + size > self._max:
                break
            item = self._queue.popleft()
            self._queued_statements -= size
            if item.client is None:
                self._unannounced -= 1
            if item.future.done():  # the caller went away before we started
                continue
            group.append(item)
            count += size
        return group

    async def _commit_group(self, group: list[_Queued]) -> None:
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

    @contextlib.asynccontextmanager
    async def _head_lock_hold(self) -> AsyncIterator[_Hold]:
        hold = _Hold()
        try:
            yield hold
        finally:
            if hold.since is not None:
                held = time.perf_counter() - hold.since
                metrics.LOG_HEAD_LOCK_SECONDS.observe(held)
                self.head_lock_seconds += held
                if self.keep_head_lock_holds:
                    self.head_lock_holds.append(held)

    async def _write(self, requests: list[AppendRequest]) -> GroupPlan:
        """One group's transaction, on the connection the previous group left
        when more requests were already waiting, else on one from the pool."""
        held, self._held = self._held, None
        conn = await connection_for_group(self._group_pool, held)
        try:
            plan = await self._write_on(conn, requests)
        except BaseException:
            await release(self._group_pool, conn)
            raise
        if conn.is_in_transaction():
            # The COMMIT began the next group's transaction (_write_on): more
            # requests were already waiting.  Keeping the connection skips the
            # pool's reset too (a round trip of four statements).  A group's
            # transaction leaves nothing behind it in the session: its row
            # locks end at COMMIT and it takes no advisory lock, LISTENs to
            # nothing, sets nothing and opens no cursor.
            self._held = conn
        else:
            await release(self._group_pool, conn)  # committed: a failure to reset the connection is not the group's
        return plan


    def _more_waiting(self) -> bool:
        """Whether the next group's transaction begins at this COMMIT: a group
        follows at once (requests are waiting), or a client of this group
        will likely be back with another request (it announced itself and
        keeps its connection: the lock-step of single-statement POSTs, where
        a group holds nearly every client of its worker and nobody waits at
        its COMMIT).  A transaction begun for clients that do not come back
        within ``begun_hold_s`` is rolled back (:meth:`_idle`)."""
        now = asyncio.get_running_loop().time()
        # PostgreSQL reports a backend's statistics (the rows it wrote, which
        # autovacuum and autoanalyze go by) only when it is idle outside a
        # transaction: under a steady stream of groups a connection always
        # in one would never report them, so at least every stats_every_s a
        # COMMIT begins nothing.
        begin = not self._closing and now - self._left_transaction_at < self._stats_every_s and (
            bool(self._queue) or self._gathering.coming_back(item.client for item in self._group)
        )
        if not begin:
            self._left_transaction_at = now
        return begin

    def _chained(self) -> None:
        self.groups_chained += 1

    def _begin_group(self) -> str:
        return begin_group(self._log_position if self._enough_statements else None)

    async def _count_statements(self, conn: asyncpg.Connection) -> None:
        """Whether the store holds enough statements for generic plans,
        asked only once the log is long enough, and again only after it
        grew (COUNT_STATEMENTS_UPTO says why)."""
        position, counted = self._log_position, self._statements_counted_at
        if self._enough_statements or position is None or position < GENERIC_PLANS_FROM:
            return
        if counted is not None and position < counted + COUNT_STATEMENTS_EVERY:
            return
        self._statements_counted_at = position
        count = await conn.fetchval(COUNT_STATEMENTS_UPTO, GENERIC_PLANS_FROM)
        self._enough_statements = count >= GENERIC_PLANS_FROM

    async def _write_on(self, conn: asyncpg.Connection, requests: list[AppendRequest]) -> GroupPlan:
        # Look the group's ids up before taking the lock (the other
        # writers' commits go on meanwhile); under it, read only what was
        # committed since the head seen first.
        # Small groups look up in the call that takes the lock, as seen once
        # it is granted (SELECT_HEAD_WITH_TOUCHED_AND_DEFINITIONS): one round
        # trip instead of up to four, and their lookups are short.
        await self._count_statements(conn)
        lookups = touched_lookups(requests)
        defined = defined_activities(requests)  # walked once, outside the lock
        ahead = sum(len(r.statements) for r in requests) >= LOOKUP_AHEAD_MIN_STATEMENTS
        seen: int | None = None
        existing: list[ExistingStatement] = []
        if ahead:
            seen = await conn.fetchval(SELECT_HEAD_POSITION)
            existing = await fetch_touched(conn, lookups)
        # The hold is timed until the COMMIT (or ROLLBACK) returns: the
        # transaction is left before the timer.
        async with self._head_lock_hold() as hold, group_transaction(
            conn, self._more_waiting, self._chained, self._begin_group
        ):
            # Keys made for the requests, before the head lock (a group
            # waiting here on another's key holds no lock of the log); and
            # the keys of requests sealed before this connection's session
            # began that are not known to be on disk: a crash may have come
            # between (lrs.store.unconfirmed_keys).
            since = session_known_since(conn)
            taken = await keys_taken(conn, requests, since) if any(
                r.new_keys or unconfirmed_before_session(r, since) for r in requests) else {}
            locked: LockedDefinitions | None = None
            if seen is None:
                # The definitions the group may merge are read and locked in the
                # same call (after the checkpoint, the catch-up's lock order),
                # not in a round trip of their own under the head lock.
                slots = definition_slots((r.tenant, defined[id(s)]) for r in requests if r.defines for s in r.statements)
                rows = await conn.fetch(
                    SELECT_HEAD_WITH_TOUCHED_AND_DEFINITIONS, *lookup_pairs(lookups),
                    [tenant for tenant, _ in slots], [activity_id for _, activity_id in slots],
                )
                hold.locked()
                row = rows[0]
                head = LogHead(row["head_position"], row["head_hash"], row["head_stored"])
                existing = [existing_statement(r["tenant"], r) for r in rows[1:] if r["activity_id"] is None]
                if slots:
                    locked = LockedDefinitions(frozenset(slots), {
                        (r["def_tenant"], r["activity_id"]): r["definition"]
                        for r in rows[1:] if r["activity_id"] is not None
                    })
            else:
                row = await conn.fetchrow(SELECT_HEAD_FOR_UPDATE)
                hold.locked()
                head = LogHead(row["position"], row["hash"], row["stored"])
            self.key_epoch = row["key_epoch"]
            self._log_position = head.position
            refused = await erased_meanwhile(conn, requests, row["key_epoch"])
            if taken:
                refused = {**refused, **taken}
            if seen is not None and head.position != seen:
                later = await fetch_touched(conn, lookups, (seen, head.position))
                existing = merge_touched(existing, later)
            now = self._clock()
            if self._floor is not None and now <= self._floor:
                now = self._floor + ONE_MICROSECOND
            kept = [r for index, r in enumerate(requests) if index not in refused] if refused else requests
            plan = plan_group(kept, existing, head, now, self._new_event_id)
            if refused:
                outcomes = iter(plan.outcomes)
                plan.outcomes = [
                    refused[index] if index in refused else next(outcomes) for index in range(len(requests))
                ]
            refs, ciphertexts = ciphertext_columns(r.ciphertexts for r in kept if r.ciphertexts)
            if plan.head is None:
                # Nothing new (only duplicates and errors); the senders
                # may still reuse the sealed forms naming these.
                if refs:
                    await conn.execute(INSERT_CIPHERTEXTS, refs, ciphertexts)
                return plan
            self._committing_min_stored = plan.new[0].event.stored
            self._log_position = plan.head.position
            updates = group_definition_updates(requests, plan, defined)
            # The relay of a shared log runs in another process: the statement
            # wakes it at commit, if this group carries the announcement.
            self._group_announced = self._announcer is not None and self._announcer.with_group()
            written = await conn.fetchrow(
                INSERT_GROUP, *group_columns(plan), bool(updates), self._group_announced, authority_keys(plan),
                refs, ciphertexts,
            )
            if written["referred"] or any(n.statement.statement_ref is not None for n in plan.new):
                # the keys of StatementRef chains through the group (lrs/store/ref_keys.py)
                await add_reached_keys(conn, [n.event.tenant for n in plan.new],
                                       [n.event.statement_id for n in plan.new])
            by_tenant: dict[str, list[uuid.UUID]] = defaultdict(list)
            for tenant, statement_id in plan.newly_voided:
                by_tenant[tenant].append(statement_id)
            for tenant, ids in by_tenant.items():
                await conn.execute(UPDATE_VOIDED, tenant, ids)
            await write_definitions(conn, updates, plan.head.position, checkpoint_moved=True, locked=locked)
        return plan


class _Hold:
    """When the log head lock was taken (perf_counter), if it was."""

    __slots__ = ("since",)

    def __init__(self) -> None:
        self.since: float | None = None

    def locked(self) -> None:
        self.since = time.perf_counter()
