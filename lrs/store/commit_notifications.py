"""Commit notifications between processes sharing one log.

Within one process the writer calls its ``committed`` hooks (the relay's
``notify``).  When several HTTP worker processes share the log
(``LRS_HTTP_WORKERS`` > 1) the relay runs in a process of its own, so group
commits also send ``NOTIFY lrs_log, '<head position>'``: PostgreSQL delivers
it when (and only if) the transaction commits, and the relay's listener wakes
it at once instead of at its next poll.  A writer announces about once every
20 ms (:class:`CommitAnnouncer`), every commit within that.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import AsyncIterator, Awaitable, Callable

import structlog

from lrs.store.listener import listening

__all__ = ["LOG_CHANNEL", "NOTIFY_HEAD", "CommitAnnouncer", "commit_notifications"]

LOG_CHANNEL = "lrs_log"
NOTIFY_HEAD = "SELECT pg_notify('lrs_log', $1::text)"

log = structlog.get_logger(__name__)


@contextlib.asynccontextmanager
async def commit_notifications(
    database_url: str, on_commit: Callable[[int | None], None], *, retry_s: float = 0.1, retry_max_s: float = 2.0
) -> AsyncIterator[None]:
    """Call ``on_commit(head position)`` for every group commit any writer
    of the log announces, for as long as the context lasts.  Notifications
    are a shortcut: the caller's polling still finds every commit.  The
    listening connection is opened again whenever it is lost (a backend
    terminated, PostgreSQL restarted; :mod:`lrs.store.listener`), after
    ``retry_s``, backing off to ``retry_max_s``; once it listens again,
    ``on_commit(None)``: commits announced meanwhile were not heard, so the
    caller reads the head."""
    heard_before = False

    def deliver(payload: str) -> None:
        try:
            on_commit(int(payload))
        except Exception as exc:  # noqa: BLE001 - a bad payload must not stop the listener
            log.error("commit_notification.failed", payload=payload, error=repr(exc))

    def listening_again() -> None:
        nonlocal heard_before
        if heard_before:
            on_commit(None)
        heard_before = True

    async with listening(
        database_url, LOG_CHANNEL, on_notification=deliver, on_listening=listening_again,
        retry_s=retry_s, retry_max_s=retry_max_s, application_name="lrs-commit-listener",
    ):
        yield


class CommitAnnouncer:
    """When a shared log's writer announces its commits (``NOTIFY lrs_log``).

    PostgreSQL signals every backend LISTENing in the database at each
    notifying commit, whatever its channel (the HTTP workers' credential
    listeners too), and the relay's listener wakes for each: under
    single-statement POSTs, a signal to every listener per group of a dozen
    statements.  The relay lingers ``linger`` (20 ms) after a wake-up before
    it reads, so announcements closer together than that wake it no sooner.

    A group carries the announcement (:meth:`with_group`) when the last one
    was ``interval_s`` ago or more; a commit that did not is announced by
    the next group that does, or, when no commit follows it within
    ``interval_s`` (the end of a burst), by a notification of its own with
    this writer's last committed position (unless a group is being committed
    then: its commit looks again).  Every commit is thus announced with a
    position at or past it, usually within about twice ``interval_s``; a
    timer held back while the next group waits on the head lock, or a COMMIT
    whose answer was lost, is covered by the next announcement of any writer
    or by the relay's 0.5 s poll."""

    def __init__(self, send: Callable[[int], Awaitable[None]], *, interval_s: float,
                 busy: Callable[[], bool] = lambda: False, close_timeout_s: float = 2.0) -> None:
        self._send = send
        self._interval = max(interval_s, 0.0)
        self._close_timeout = max(close_timeout_s, 0.0)
        self._busy = busy
        self._announced_at = float("-inf")  # event loop time of the last announcement sent
        self._pending = False  # a commit not announced yet
        self._position = 0
        self._timer: asyncio.TimerHandle | None = None
        self._sending: asyncio.Task[None] | None = None
        self._given_up: set[asyncio.Task[None]] = set()  # sends close() stopped waiting for
        self.sent_alone = 0  # announcements that travelled without a group (tests, metrics)

    def with_group(self) -> bool:
        """Whether the group about to be written announces its commit."""
        now = asyncio.get_running_loop().time()
        if now - self._announced_at < self._interval:
            return False
        self._announced_at = now
        return True

    def committed(self, position: int, *, announced: bool) -> None:
        """A group committed up to ``position``; ``announced``: it carried the announcement."""
        self._position = max(self._position, position)
        if announced:
            self._pending = False  # its head covers every commit before it
            return
        self._pending = True
        # A later group carries it once interval_s has passed since the last
        # announcement; if none comes within interval_s, it goes alone.
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_later(self._interval, self._due)

    def _due(self) -> None:
        self._timer = None
        if not self._pending:
            return
        loop = asyncio.get_running_loop()
        if self._busy():  # the group being committed may carry it; look again after it
            self._timer = loop.call_later(self._interval, self._due)
            return
        self._pending = False
        self._announced_at = loop.time()
        self.sent_alone += 1
        self._sending = loop.create_task(self._send_alone(self._position), name="lrs-commit-announcement")

    async def _send_alone(self, position: int) -> None:
        try:
            await self._send(position)
        except Exception as exc:  # noqa: BLE001 - the relay's poll still finds the commit
            log.warning("commit_notification.send_failed", position=position, error=repr(exc))

    async def close(self) -> None:
        """Stop; a commit not announced yet is announced now, waiting at
        most ``close_timeout_s`` for it (and for one being sent): with
        PostgreSQL unreachable, getting a connection can take asyncpg's
        connect timeout (60 s), and a statement on a connection that no
        longer answers has no end, nor has its cancellation (asyncpg waits
        for the server to confirm it); the relay's poll finds the commit
        anyway.  A send given up is cancelled and not waited for."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        sends = [] if self._sending is None else [self._sending]
        self._sending = None
        if self._pending:
            self._pending = False
            self.sent_alone += 1
            sends.append(asyncio.get_running_loop().create_task(
                self._send_alone(self._position), name="lrs-commit-announcement"))
        if not sends:
            return
        _done, late = await asyncio.wait(sends, timeout=self._close_timeout)
        if late:
            log.warning("commit_notification.not_sent_at_close", position=self._position,
                        waited_s=self._close_timeout)
            for task in late:
                task.cancel()
                self._given_up.add(task)  # kept referenced until its cancellation ends
                task.add_done_callback(self._given_up.discard)
