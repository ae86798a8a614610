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
horizon is thinking (or gone) and no longer holds a group up: the wait is
then never longer than the configured one, as before.
"""

from __future__ import annotations

import time
from typing import Callable, Hashable, Iterable

__all__ = ["EXPECTED_BACK_S", "Arrival", "Gathering"]

# How long a connection whose request was answered is expected back.
EXPECTED_BACK_S = 0.05


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

    def close(self) -> None:
        """The request is done: if it never reached the writer (refused
        before, or failed), it is no longer arriving.  Its client is not
        expected back: it was in no group."""
        if self.arriving:
            self.arriving = False
            self._gathering._left()


class Gathering:
    """Requests arriving and clients expected back, of one writer (one worker).
    ``settled`` is called when the last arriving request reaches the writer
    or leaves: the writer then asks :meth:`may_grow` again."""

    def __init__(
        self, settled: Callable[[], None], *, clock: Callable[[], float] = time.monotonic,
        expected_back_s: float = EXPECTED_BACK_S,
    ) -> None:
        self._settled = settled
        self._clock = clock
        self._expected_back_s = expected_back_s
        self.arriving = 0
        self._answered: dict[Hashable, float] = {}  # client -> when its request was answered

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
                self._answered[client] = now
        # Forgotten here too, not only when the writer asks: with no wait
        # (LRS_GROUP_COMMIT_WAIT_MS=0), a queue always full or a request
        # always arriving, it never does, and connections answered once
        # would be held for the life of the worker.
        self._forget_stale()

    @property
    def expected_back(self) -> int:
        """Clients answered within the horizon whose next request has not arrived."""
        self._forget_stale()
        return len(self._answered)

    def may_grow(self) -> bool:
        """Whether a request is arriving or a client is expected back."""
        return self.arriving > 0 or self.expected_back > 0

    def _forget_stale(self) -> None:
        if not self._answered:
            return
        horizon = self._clock() - self._expected_back_s
        stale = []
        for client, at in self._answered.items():  # oldest answer first
            if at >= horizon:
                break
            stale.append(client)
        for client in stale:
            del self._answered[client]

    def _left(self) -> None:
        self.arriving -= 1
        if self.arriving == 0:
            self._settled()
