"""The group-commit writer's state (:mod:`lrs.store.writer`): what it was
given, the queue and the group being committed, the head it saw last, its
counters for metrics, and what the service reads of it (consistent-through,
``/ready``); a request as queued, and the writer's errors."""

from __future__ import annotations

import asyncio
import uuid
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Hashable

import asyncpg

from lrs.batching import AppendRequest, AppendResult
from lrs.eventlog import ONE_MICROSECOND
from lrs.store.availability import StorageUnavailableError
from lrs.store.commit_notifications import CommitAnnouncer
from lrs.store.gathering import Gathering
from lrs.store.ids import TimeOrderedUuids

__all__ = ["Queued", "WriterClosedError", "WriterFailedError", "WriterState", "utc_now"]


class WriterClosedError(RuntimeError):
    """The writer is shutting down and accepts no new requests."""


class WriterFailedError(StorageUnavailableError):
    """The writer's task ended unexpectedly and is being started again: the
    request was not taken, or was in a group whose commit may or may not
    have happened (retrying with the same statement ids is safe)."""


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(slots=True)
class Queued:
    request: AppendRequest
    future: asyncio.Future[list[AppendResult]]
    client: Hashable | None  # the connection that announced it (arrival), if one did


class WriterState:
    """The state the parts of :class:`lrs.store.writer.StatementWriter`
    share, and what the service reads of it."""

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
        self._queue: deque[Queued] = deque()
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
        self._group: list[Queued] = []  # the group being committed
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
