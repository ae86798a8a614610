"""Run a projection: consume the log, fold, checkpoint, acknowledge.

Correctness rests on Postgres, not on NATS delivery guarantees:

- a projection's state and its checkpoint (the last log position applied)
  are written in one transaction, and messages are acknowledged only after
  it commits (projections/applying.py; the checkpoint and the parked events
  are projections/checkpoints.py);
- NATS is a transport, not an authority: a message is applied only when it
  is the log's (lrs.message_check); a gap is filled from the log;
- an event the projection's rules fail on is tried again ``retry_delay``
  later (1 s; not sooner, however many batches come meanwhile), and at its
  ``max_attempts``-th failure (5) it is parked in ``projection_parked`` with
  an error log line, at least ``(max_attempts - 1) * retry_delay`` after the
  first (4 s), and the projection moves on, so the other learners keep
  flowing.  The competency rules do not depend on event order, so a parked
  event can be applied later and give the state it would have given in place.

Events arrive by one of two deliveries, each run by one process at a time
(projections/leader.py): JetStream (projections/jetstream_loop.py) or, with
no NATS configured, the PostgreSQL log itself (projections/poll_loop.py).
``replay`` (projections/replay.py) rebuilds a projection from the Postgres log.
"""

from __future__ import annotations

import asyncio
from typing import Awaitable, Callable, Sequence

import asyncpg
import nats  # noqa: F401  (the JetStream delivery connects through it)

from projections import jetstream_loop, poll_loop
from projections.applying import TRANSIENT_ERRORS, BatchApplier, BatchOutcome
from projections.checkpoints import CheckpointStore, ParkedEvent, checkpoint_position, parked_count, parked_events
from projections.contract import Projection, ProjectionOutdated
from projections.events import LogEvent, event_from_message
from projections.retry_requests import serve_retry_requests

__all__ = [
    "TRANSIENT_ERRORS",
    "BatchOutcome",
    "LogEvent",
    "ParkedEvent",
    "Projection",
    "ProjectionOutdated",
    "ProjectionRunner",
    "checkpoint_position",
    "event_from_message",
    "parked_count",
    "parked_events",
]


class ProjectionRunner:
    def __init__(self, pool: asyncpg.Pool, projection: Projection, *, max_attempts: int = 5) -> None:
        self.pool = pool
        self.projection = projection
        self.checkpoints = CheckpointStore(projection)
        self.applier = BatchApplier(pool, projection, self.checkpoints, max_attempts=max_attempts)
        self.max_attempts = max_attempts

    @property
    def name(self) -> str:
        return self.projection.name

    async def checkpoint(self) -> int:
        """The stored checkpoint, creating it (at 0) for a new projection.

        Raises ProjectionOutdated when the state was built with other rules."""
        async with self.pool.acquire() as conn, conn.transaction():
            return await self.checkpoints.lock(conn)

    async def apply_batch(self, events: Sequence[LogEvent]) -> BatchOutcome:
        """Apply ``events`` (any order, duplicates allowed) and every event of
        the log before them that is not applied yet, in one transaction."""
        return await self.applier.apply_batch(events)

    async def retry_parked(self, position: int, tenant: str) -> str | None:
        """Apply a parked event again (see BatchApplier.retry_parked)."""
        return await self.applier.retry_parked(position, tenant)

    async def catch_up(self, batch_size: int = 1000) -> int:
        """Apply everything in the Postgres log (no NATS); returns the checkpoint."""
        return await poll_loop.catch_up(self.applier, batch_size)

    async def follow(
        self,
        stop: asyncio.Event,
        wake: asyncio.Event,
        *,
        batch_size: int = 1000,
        poll_interval: float = 1.0,
        on_batch: Callable[[BatchOutcome], None] | None = None,
        retry_delay: float = 1.0,
    ) -> None:
        """Follow the Postgres log directly (no NATS configured): catch up
        whenever ``wake`` is set (the writer's commit hook) or every
        ``poll_interval`` seconds, until ``stop`` is set.  An event the rules
        fail on is tried again no sooner than ``retry_delay`` after its failure."""
        self.applier.retry_delay = retry_delay
        await poll_loop.follow(
            self.applier, stop, wake, batch_size=batch_size, poll_interval=poll_interval, on_batch=on_batch,
            while_leading=self._serve_retry_requests,
        )

    async def run(
        self,
        nats_url: str,
        stop: asyncio.Event,
        *,
        batch_size: int = 1000,
        fetch_timeout: float = 0.1,
        retry_delay: float = 1.0,
        on_batch: Callable[[BatchOutcome], None] | None = None,
        batch_interval: float = 0.1,
        stalled_after: float = 15.0,
        max_batch_size: int = 5000,
    ) -> None:
        """Consume until ``stop`` is set, with a durable pull consumer named
        ``projection-<name>`` on the LRS_EVENTS stream.  One runner per
        projection consumes (it holds a Postgres advisory lock); others wait.

        A batch that was not full is followed by a pause of ``batch_interval``
        seconds before the next fetch: a runner that keeps up would otherwise
        commit a transaction for every few events, and the fixed cost of each
        (a dozen statements, a commit) then outweighs the events' own.  The
        pause bounds the transactions per second and adds at most its length
        to the lag; a full batch (a backlog) is followed by the next at once,
        twice as large, up to ``max_batch_size`` (the consumer's
        max_ack_pending bounds it too).

        A NATS connection that has been down for ``stalled_after`` seconds is
        replaced by a new one (see jetstream_loop.ClientStalled).

        A batch that fails on a database or network outage is fetched again
        ``retry_delay`` seconds later; an event the rules fail on is tried
        again no sooner than ``retry_delay`` after its failure."""
        self.applier.retry_delay = retry_delay
        pulling = jetstream_loop.Pulling(
            batch_size, fetch_timeout, retry_delay, on_batch, batch_interval, stalled_after, max_batch_size
        )
        await jetstream_loop.consume(self.applier, nats_url, stop, pulling, while_leading=self._serve_retry_requests)

    def _serve_retry_requests(self, lock_conn: asyncpg.Connection) -> Callable[[], Awaitable[None]]:
        """Only the leader applies events: it carries out the requests to
        retry parked ones (projections/retry_requests.py)."""
        return serve_retry_requests(self, lock_conn)
