"""Requests entering the group-commit writer (:mod:`lrs.store.writer`):
queued by ``append``, announced by ``arrival``, gathered into a group until
the queue is full, the wait is over or waiting cannot make the group larger
(:mod:`lrs.store.gathering`), and taken off the queue."""

from __future__ import annotations

import asyncio
import math
from typing import Hashable, Mapping, Sequence

from lrs import metrics
from lrs.batching import AppendRequest, AppendResult, statement_form
from lrs.ingest.model import PreparedStatement
from lrs.store.gathering import Arrival
from lrs.store.group_columns import key_literal
from lrs.store.writer_state import Queued, WriterClosedError, WriterFailedError, WriterState

__all__ = ["WriterQueue"]


class WriterQueue(WriterState):
    """The queue of requests and the gathering of a group from it."""

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
        self._queue.append(Queued(
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

    def _take_group(self) -> list[Queued]:
        group: list[Queued] = []
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
