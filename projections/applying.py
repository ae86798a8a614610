"""Applying events to a projection: a batch, checked against the log, with
the events before it that are not applied yet, in one transaction with the
checkpoint.

- positions are gapless and in commit order, so events are applied strictly
  as checkpoint + 1, + 2, ...; an event at or below the checkpoint is a
  redelivery or a duplicate and changes nothing; a gap (a message NATS has
  not delivered yet, or lost) is filled by reading the event log in Postgres;
- a message is applied only when its hash, recomputed from what it carries
  and chained on the log's previous hash, is the log's hash at its position
  (lrs.message_check).  Anything else is refused: never applied, counted
  (lrs.projection_health) and logged as an alert; the log fills its place.
  A message by reference (docs/contracts.md) is read from Postgres;
- an event the projection's rules fail on (not a database or network
  outage) is tried again on a later batch, no sooner than ``retry_delay``
  after its failure, however many batches (redelivered messages, later
  events, looks at the log) come meanwhile; at its ``max_attempts``-th
  failure it is parked, at least ``(max_attempts - 1) * retry_delay`` after
  the first, and the projection moves on, so the other learners keep flowing.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
from dataclasses import dataclass
from typing import Sequence

import asyncpg
import structlog

from lrs import projection_health
from lrs.message_check import needed_positions, refusal
from lrs.store.log_reader import hashes_at, read_events_after
from lrs.store.log_reader import last_position as log_last_position
from projections.checkpoints import CheckpointStore
from projections.contract import Projection
from projections.events import LogEvent, log_events

__all__ = ["BatchApplier", "BatchOutcome", "TRANSIENT_ERRORS"]

log = structlog.get_logger("lrs.projections")

# A database or network outage: the batch is retried as a whole and counts
# against no event.  Anything else an event raises counts as its failure.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.SerializationError,
    asyncpg.exceptions.DeadlockDetectedError,
    asyncpg.exceptions.LockNotAvailableError,
    asyncpg.exceptions.InsufficientResourcesError,
    asyncpg.exceptions.OperatorInterventionError,
)


RELAYED = "SELECT max(position) FROM relay_checkpoints"
# A batch's commit does not wait for its WAL to reach the disk: a projection
# is derived from the log, and its checkpoint commits with its state, so a
# commit lost in a crash of PostgreSQL (at most wal_writer_delay's worth) is
# lost with its checkpoint, and those events are applied again, from their
# messages if JetStream still has them, else from the log (behind_relay).
# The commit was the fifth largest wait of a batch (bench/live_apply_profile.py,
# STATEMENTS=1: 16 wall µs per event with every statement evidence).
NO_COMMIT_WAIT = "SET LOCAL synchronous_commit = off"
BEHIND_RELAY = """
SELECT coalesce((SELECT max(position) FROM relay_checkpoints), 0)
     > coalesce((SELECT position FROM projection_checkpoints WHERE name = $1), 0)
"""

@dataclass(frozen=True, slots=True)
class BatchOutcome:
    checkpoint: int  # every position up to here is applied (or parked)
    applied: int
    parked: tuple[int, ...]
    failed_at: int | None  # the event that failed this time, or waits for its retry_delay (will be retried)
    refused: tuple[LogEvent, ...] = ()  # messages that do not match the log: never applied


class BatchApplier:
    """Folds events into ``projection`` and moves its checkpoint with them."""

    # The most events of the log one batch reads to fill a gap before its
    # messages.  LRS_EVENTS keeps a message only until every consumer that
    # selects it acknowledged it (at most 30 days): a consumer created later
    # (a projection new to an older store, or recreated), or one down past
    # max_age, is first delivered a message far beyond its checkpoint, or
    # none at all (see behind_relay), and filling the whole gap at once read
    # every event in between into one transaction.  Its later messages are
    # negatively acknowledged and come again, applied by then.
    max_gap_fill = 10_000

    def __init__(
        self, pool: asyncpg.Pool, projection: Projection, checkpoints: CheckpointStore, *, max_attempts: int
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.pool = pool
        self.projection = projection
        self.checkpoints = checkpoints
        self.max_attempts = max_attempts
        self.name = projection.name
        # Seconds before an event that failed is tried again (the runner's
        # retry_delay; 0: on the next batch, as a caller applying by hand has it).
        self.retry_delay = 0.0
        self._not_before: dict[int, float] = {}  # position of an event that failed -> when it may be tried again

    def retry_wait(self, checkpoint: int) -> float:
        """Seconds until the event after ``checkpoint``, which failed, may be
        tried again (0.0: it may be now, or it did not fail).  Nothing after
        it can be applied meanwhile (events are applied in log order)."""
        not_before = self._not_before.get(checkpoint + 1)
        if not_before is None:
            return 0.0
        return max(0.0, not_before - asyncio.get_running_loop().time())

    async def behind_relay(self) -> bool:
        """Whether the relay published positions beyond the checkpoint: with
        nothing to fetch, those are gone from the stream (acknowledged by the
        other consumers before this one existed, or past max_age) and
        ``apply_batch([], fill_to=...)`` reads them from the log."""
        return bool(await self.pool.fetchval(BEHIND_RELAY, self.name))

    async def relayed_position(self) -> int:
        return int(await self.pool.fetchval(RELAYED) or 0)

    async def apply_batch(self, events: Sequence[LogEvent], *, fill_to: int = 0) -> BatchOutcome:
        """Apply ``events`` (any order, duplicates allowed) and every event of
        the log before them that is not applied yet, in one transaction.

        The projection is told when the transaction starts (``begin``),
        commits (``committed``), or fails or rolls back to a savepoint
        (``rolled_back``).

        The cyclic garbage collector is paused for the batch: a batch builds
        and drops tens of thousands of short-lived rows, states and lists,
        and each of the collections they would set off would also walk what
        the batch holds (measured: about a fifteenth of the runner's CPU
        with every statement evidence, bench/live_apply_profile.py).  Reference
        counting frees them as before; what is left in cycles is collected
        after the batch."""
        p = self.projection
        collecting = gc.isenabled()
        gc.disable()
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                await conn.execute(NO_COMMIT_WAIT)
                checkpoint, rebuilds = await self.checkpoints.lock_counted(conn)
                p.begin(checkpoint, rebuilds)
                outcome = await self._apply_after(conn, events, checkpoint, fill_to)
        except BaseException:
            p.rolled_back()
            raise
        finally:
            if collecting:
                gc.enable()
        p.committed(outcome.checkpoint)
        return outcome

    async def _apply_after(
        self, conn: asyncpg.Connection, events: Sequence[LogEvent], checkpoint: int, fill_to: int = 0
    ) -> BatchOutcome:
        checked, referenced, refused = await self._checked(conn, events)
        incoming = {position: e for position, e in checked.items() if position > checkpoint}
        wanted = [p for p in (*incoming, *referenced) if p > checkpoint]
        if wanted:
            last = max(wanted)
        elif refused:  # carry on from the log as far as the refused messages claimed
            last = min(max(e.position for e in refused), await log_last_position(conn))
        else:
            last = checkpoint
        last = max(last, min(fill_to, await log_last_position(conn)) if fill_to else 0)
        last = min(last, checkpoint + self.max_gap_fill)
        if last <= checkpoint:
            return BatchOutcome(checkpoint, 0, (), None, tuple(refused))
        if self.retry_wait(checkpoint) > 0:  # the next event waits its retry_delay: no need to read the log
            return BatchOutcome(checkpoint, 0, (), checkpoint + 1, tuple(refused))
        if len(incoming) < last - checkpoint:
            # A gap (not delivered yet, lost, refused or by reference): the log fills it.
            for record in await read_events_after(conn, checkpoint, last - checkpoint):
                incoming.setdefault(
                    record.position,
                    LogEvent(record.position, record.tenant, record.event_type, bytes(record.payload)),
                )
        run: list[LogEvent] = []
        waiting: int | None = None  # an event that failed, not to be tried again yet
        now = asyncio.get_running_loop().time()
        for position in range(checkpoint + 1, last + 1):
            event = incoming.get(position)
            if event is None:
                break  # not in the log yet: cannot happen with a gapless log; wait
            if self._not_before.get(position, 0.0) > now:
                waiting = position
                break
            run.append(event)
        if not run:
            return BatchOutcome(checkpoint, 0, (), waiting, tuple(refused))
        outcome = await self.apply_run(conn, run, checkpoint)
        if outcome.failed_at is None and waiting is not None:
            outcome = dataclasses.replace(outcome, failed_at=waiting)
        await self.checkpoints.advance(conn, outcome.checkpoint)
        return dataclasses.replace(outcome, refused=tuple(refused)) if refused else outcome

    async def _checked(
        self, conn: asyncpg.Connection, events: Sequence[LogEvent]
    ) -> tuple[dict[int, LogEvent], list[int], list[LogEvent]]:
        """The events that are the log's, by position, and the messages that
        are refused (counted, logged as an alert).  A message is the log's
        when its hash, recomputed from what it carries chained on the hash
        the log holds before its position, is the hash the log holds at its
        position (lrs.message_check).  A message by reference carries no
        payload: only its position is returned (``referenced``), for the log
        to fill."""
        claimed = [e for e in events if e.claim is not None]
        if not claimed:
            return {e.position: e for e in events}, [], []
        hashes = await hashes_at(conn, needed_positions(e.position for e in claimed))
        incoming: dict[int, LogEvent] = {}
        referenced: list[int] = []
        refused: list[LogEvent] = []
        for event in events:
            claim = event.claim
            if claim is None:
                incoming.setdefault(event.position, event)
                continue
            reason = refusal(event.position, event.tenant, event.event_type, event.payload, claim.event_id,
                             claim.stored, claim.prev_hash, claim.by_reference, hashes, claim.hash)
            if reason is None:
                if claim.by_reference:
                    referenced.append(event.position)
                else:
                    incoming.setdefault(event.position, event)
                continue
            refused.append(event)
            projection_health.note_refused(self.name, reason)
            log.error("projection.message_refused", projection=self.name, position=event.position,
                      tenant=event.tenant, reason=reason, alert=True)
        return incoming, referenced, refused

    async def apply_run(self, conn: asyncpg.Connection, run: Sequence[LogEvent], checkpoint: int) -> BatchOutcome:
        """Apply consecutive events after ``checkpoint`` in the caller's
        transaction (the checkpoint is the caller's to move): all at once
        (``apply_many``), or, when that fails, one by one so that a failure
        is pinned on its event."""
        if len(run) > 1:
            try:
                async with conn.transaction():  # a savepoint
                    await self.projection.apply_many(conn, run)
                return BatchOutcome(run[-1].position, len(run), (), None)
            except TRANSIENT_ERRORS:
                raise
            except Exception as exc:
                self.projection.rolled_back()
                log.info("projection.batch_retried_one_by_one", projection=self.name, error=repr(exc))
        applied, parked, failed_at = 0, [], None
        for event in run:
            ok = await self._apply_one(conn, event)
            if ok is False:
                failed_at = event.position
                break
            if ok is None:
                parked.append(event.position)
            else:
                applied += 1
            checkpoint = event.position
        return BatchOutcome(checkpoint, applied, tuple(parked), failed_at)

    async def _apply_one(self, conn: asyncpg.Connection, event: LogEvent) -> bool | None:
        """True: applied; None: parked; False: failed, retry later."""
        try:
            async with conn.transaction():  # a savepoint: a failure undoes only this event
                await self.projection.apply(conn, event)
            self._not_before.pop(event.position, None)
            return True
        except TRANSIENT_ERRORS:
            raise
        except Exception as exc:
            self.projection.rolled_back()
            error = repr(exc)
            attempts = await self.checkpoints.record_failure(conn, event.position, error)
            if attempts < self.max_attempts:
                log.warning(
                    "projection.event_failed", projection=self.name, position=event.position,
                    tenant=event.tenant, attempts=attempts, error=error,
                )
                self._not_before[event.position] = asyncio.get_running_loop().time() + self.retry_delay
                return False
            self._not_before.pop(event.position, None)
            await self.checkpoints.park(conn, event.position, event.tenant, attempts, error)
            log.error(
                "projection.event_parked", projection=self.name, position=event.position,
                tenant=event.tenant, attempts=attempts, error=error, alert=True,
            )
            return None

    async def retry_parked(self, position: int, tenant: str) -> str | None:
        """Apply the parked event at ``position`` (of ``tenant``) again, now that
        what made it fail may be fixed: the rules do not depend on order, so it
        gives the state it would have given in place.  None when it applied
        (and is no longer parked); else its new error, and it stays parked.
        Raises LookupError when no such event is parked."""
        p = self.projection
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                checkpoint, rebuilds = await self.checkpoints.lock_counted(conn)  # one writer at a time, as for batches
                if not await self.checkpoints.is_parked(conn, position, tenant):
                    raise LookupError(f"no event at position {position} is parked for tenant {tenant!r}")
                (event,) = log_events(await read_events_after(conn, position - 1, 1))
                p.begin(checkpoint, rebuilds)
                try:
                    async with conn.transaction():  # a savepoint: a failure undoes only the event
                        await p.apply(conn, event)
                except TRANSIENT_ERRORS:
                    raise
                except Exception as exc:
                    p.rolled_back()
                    await self.checkpoints.parked_again(conn, position, repr(exc))
                    log.warning("projection.retry_failed", projection=self.name, position=position, error=repr(exc))
                    return repr(exc)
                await self.checkpoints.unpark(conn, position)
        except BaseException:
            p.rolled_back()
            raise
        p.committed(checkpoint)
        log.info("projection.unparked", projection=self.name, position=position, tenant=tenant)
        return None
