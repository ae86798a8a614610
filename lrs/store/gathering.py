"""Whether waiting can still make a group commit's group larger
(:mod:`lrs.store.writer`).

The writer gathers a group for up to ``LRS_GROUP_COMMIT_WAIT_MS``.  Under
single-statement POSTs the clients move in lock-step: a group answers nearly
every client of its worker at once, they come back together, and the group
that follows holds them all again.  Once every one of them is queued, the
rest of the wait only idles the worker (docs/scaling.md, "Group commit's wait
ends when nobody else can join").

A request that will append announces itself as it enters the handler
(:meth:`Gathering.arrival`, keyed by its connection) and is *arriving* until
it reaches the writer (:meth:`Arrival.reached`) or leaves without
(:meth:`Arrival.close`).  A connection whose request was answered is
*expected back* for :data:`EXPECTED_BACK_S`, until its next request arrives:
a closed-loop client returns within a few milliseconds, and while one is on
its way (its answer being sent, its next request in the network or in the
middlewares) the group may still grow.  Waiting can make the group larger
only while a request is arriving or a client is expected back; otherwise the
group commits at once.  A client that does not come back within the
horizon is thinking (or gone) and no longer holds a group up: when only
clients expected back hold the group, the writer is told to look again when
the first of them passes the horizon (the wait is never longer than the
configured one, as before).

A client that will not come back is not expected back at all: a request
that asked for its connection to be closed after the answer
(:meth:`Arrival.last_on_connection`, ``Connection: close`` or HTTP/1.0), and
a connection already closed when the writer looks (``gone``: by default a
client with a ``transport`` attribute that is ``None``, as an aiohttp
connection's protocol has once the connection is lost).  Only how long the
group waits changes: a request is still answered after its group's COMMIT.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Callable, Hashable, Iterable

__all__ = ["EXPECTED_BACK_S", "Arrival", "Gathering"]

# How long a connection whose request was answered is expected back.
EXPECTED_BACK_S = 0.05

_NO_TRANSPORT: Any = object()


def connection_closed(client: Hashable) -> bool:
    """Whether ``client`` is a connection that was lost: aiohttp's protocol
    (``request.protocol``) sets its ``transport`` to ``None`` then."""
    return getattr(client, "transport", _NO_TRANSPORT) is None


class Arrival:
    """One request on its way to the writer (:meth:`Gathering.arrival`)."""

    __slots__ = ("_gathering", "client", "arriving")

    def __init__(self, gathering: Gathering, client: Hashable) -> None:
        self._gathering = gathering
        self.client = client
        self.arriving = True

    def reached(self) -> None:
        """The request is queued to the writer (again, when it is retried:
        its client, answered meanwhile, is no longer expected back)."""
        if self.arriving:
            self.arriving = False
            self._gathering._left()
        else:
            self._gathering._answered.pop(self.client, None)

    def last_on_connection(self) -> None:
        """The connection closes after this request's answer: its client
        will not come back on it, so no group waits for it."""
        self._gathering._leaving.add(self.client)

    def close(self) -> None:
        """The request is done: if it never reached the writer (refused
        before, or failed), it is no longer arriving.  Its client is not
        expected back: it was in no group."""
        self._gathering._leaving.discard(self.client)
        if self.arriving:
            self.arriving = False
            self._gathering._left()


class Gathering:
    """Requests arriving and clients expected back, of one writer (one worker).
    ``settled`` is called when the last arriving request reaches the writer
    or leaves: the writer then asks :meth:`may_grow` again."""

    def __init__(
        self, settled: Callable[[], None], *, clock: Callable[[], float] = time.monotonic,
        expected_back_s: float = EXPECTED_BACK_S, gone: Callable[[Hashable], bool] = connection_closed,
    ) -> None:
        self._settled = settled
        self._clock = clock
        self._expected_back_s = expected_back_s
        self._gone = gone
        self._recheck: asyncio.TimerHandle | None = None
        self.arriving = 0
        self._answered: dict[Hashable, float] = {}  # client -> when its request was answered
        self._leaving: set[Hashable] = set()  # clients whose connection closes after the answer

    def arrival(self, client: Hashable) -> Arrival:
        """A request that will append has entered its handler on ``client`` (its connection)."""
        self._answered.pop(client, None)
        self.arriving += 1
        return Arrival(self, client)

    def answered(self, clients: Iterable[Hashable | None]) -> None:
        """These clients' requests were answered: they are expected back."""
        now = self._clock()
        for client in clients:
            if client is not None:
                # Moved to the end: the dict stays in order of answer, so the
                # stale ones are always at its front.
                self._answered.pop(client, None)
                if client not in self._leaving and not self._gone(client):
                    self._answered[client] = now
        # Forgotten here too, not only when the writer asks: with no wait
        # (LRS_GROUP_COMMIT_WAIT_MS=0), a queue always full or a request
        # always arriving, it never does, and connections answered once
        # would be held for the life of the worker.
        self._forget_stale()

    def coming_back(self, clients: Iterable[Hashable | None]) -> bool:
        """Whether one of these clients, whose requests are being committed,
        is likely to send another soon: it announced itself (a connection),
        did not ask for its connection to be closed, and the connection is
        still open."""
        return any(
            client is not None and client not in self._leaving and not self._gone(client) for client in clients
        )

    @property
    def expected_back(self) -> int:
        """Clients answered within the horizon whose next request has not arrived."""
        self._forget_stale()
        return len(self._answered)

    def may_grow(self) -> bool:
        """Whether a request is arriving or a client is expected back.  When
        only clients expected back say yes, ``settled`` is called again when
        the first of them passes the horizon (the writer then asks again)."""
        if self.arriving > 0:
            return True
        if self.expected_back == 0:
            return False
        if self._recheck is None:
            oldest = next(iter(self._answered.values()))
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # no loop (a unit test's fake clock): the writer's timer only
                return True
            delay = max(0.0, oldest + self._expected_back_s - self._clock())
            self._recheck = loop.call_later(delay, self._horizon_passed)
        return True

    def _horizon_passed(self) -> None:
        self._recheck = None
        self._settled()

    def _forget_stale(self) -> None:
        """Forgets the clients answered before the horizon and those whose
        connection was closed since (every one is looked at: at most the
        connections answered within the horizon)."""
        if not self._answered:
            return
        horizon = self._clock() - self._expected_back_s
        gone = self._gone
        stale = [client for client, at in self._answered.items() if at < horizon or gone(client)]
        for client in stale:
            del self._answered[client]

    def _left(self) -> None:
        self.arriving -= 1
        if self.arriving == 0:
            self._settled()
