"""Run a projection: consume the log from JetStream, fold, checkpoint, acknowledge.

Correctness rests on Postgres, not on NATS delivery guarantees:

- a projection's state and its checkpoint (the last log position applied)
  are written in one transaction, and messages are acknowledged only after
  it commits;
- positions are gapless and in commit order, so events are applied strictly
  as checkpoint + 1, + 2, ...; an event at or below the checkpoint is a
  redelivery or a duplicate and changes nothing; a gap (a message NATS has
  not delivered yet, or lost) is filled by reading the event log in Postgres;
- NATS is a transport, not an authority: a message is applied only when its
  hash, recomputed from what it carries and chained on the log's previous
  hash, is the log's hash at its position (lrs.message_check).  Anything else
  is refused: never applied, terminated on the stream, counted
  (lrs.projection_health) and logged as an alert; the log fills its place.
  A message by reference (docs/contracts.md) is read from Postgres;
- an event the projection's rules fail on (not a database or network
  outage) is retried on later deliveries; after ``max_attempts`` it is parked
  in ``projection_parked`` with an error log line, and the projection moves
  on, so the other learners keep flowing.  The competency rules do not depend
  on event order, so a parked event can be applied later and give the state
  it would have given in place.

``replay`` (projections/replay.py) rebuilds a projection from the Postgres log.
"""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import Awaitable, Callable, Protocol, Sequence

import asyncpg
import nats
import nats.errors
import nats.js.errors
import structlog
from nats.aio.msg import Msg

from lrs import projection_health
from lrs.nats.bus import STREAM_NAME, load_consumer_config
from lrs.config import nats_servers
from lrs.event_contract import RelayedEvent, from_message
from lrs.eventlog import EventRecord
from lrs.nats.access import connect_options
from lrs.nats.pull import PullConsumer, PullRefused
from lrs.nats.headers import use_fast_header_parse
from lrs.store import leader_lock
from lrs.message_check import needed_positions, refusal
from lrs.store.log_reader import hashes_at, read_events_after
from lrs.store.log_reader import last_position as log_last_position
from projections.retry_requests import serve_retry_requests

log = structlog.get_logger("lrs.projections")

SELECT_CHECKPOINT = """
SELECT position, rule_version, catalog_digest FROM projection_checkpoints WHERE name = $1 FOR UPDATE
"""
INSERT_CHECKPOINT = """
INSERT INTO projection_checkpoints (name, position, rule_version, catalog_digest) VALUES ($1, $2, $3, $4)
ON CONFLICT (name) DO NOTHING
"""
UPSERT_CHECKPOINT = """
INSERT INTO projection_checkpoints (name, position, rule_version, catalog_digest, updated_at)
VALUES ($1, $2, $3, $4, now())
ON CONFLICT (name) DO UPDATE SET position = EXCLUDED.position, rule_version = EXCLUDED.rule_version,
    catalog_digest = EXCLUDED.catalog_digest, updated_at = now()
"""
UPDATE_CHECKPOINT = "UPDATE projection_checkpoints SET position = $2, updated_at = now() WHERE name = $1"
RECORD_FAILURE = """
INSERT INTO projection_failures (name, position, attempts, error) VALUES ($1, $2, 1, $3)
ON CONFLICT (name, position) DO UPDATE SET attempts = projection_failures.attempts + 1,
    error = EXCLUDED.error, failed_at = now()
RETURNING attempts
"""
INSERT_PARKED = """
INSERT INTO projection_parked (name, position, tenant, attempts, error) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (name, position) DO NOTHING
"""
COUNT_PARKED = "SELECT count(*) FROM projection_parked WHERE name = $1"
DELETE_FAILURE = "DELETE FROM projection_failures WHERE name = $1 AND position = $2"
SELECT_PARKED = """
SELECT position, tenant, attempts, error, parked_at FROM projection_parked
WHERE name = $1 AND tenant = $2 ORDER BY position LIMIT $3
"""
SELECT_PARKED_ONE = "SELECT tenant FROM projection_parked WHERE name = $1 AND position = $2 AND tenant = $3"
DELETE_PARKED = "DELETE FROM projection_parked WHERE name = $1 AND position = $2"
UPDATE_PARKED = """
UPDATE projection_parked SET attempts = attempts + 1, error = $3, parked_at = now() WHERE name = $1 AND position = $2
"""
SELECT_POSITION = "SELECT position FROM projection_checkpoints WHERE name = $1"
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


@dataclass(frozen=True, slots=True)
class LogEvent:
    """One event of the log, from a JetStream message or from Postgres.

    What a projection folds: the same whichever way it came.  An event read
    from a message also carries the message (``claim``, the relayed event of
    lrs/event_contract.py with what its hash covers), so the runner can check
    it against the log before applying it; an event read from Postgres has
    none (it is the log)."""

    position: int
    tenant: str
    event_type: str
    payload: bytes
    claim: RelayedEvent | None = None


class Projection(Protocol):
    name: str
    rule_version: int
    catalog_digest: str
    tables: tuple[str, ...]

    async def apply(self, conn: asyncpg.Connection, event: LogEvent) -> None:
        """Fold one event into the state, inside the caller's transaction."""

    async def reset(self, conn: asyncpg.Connection) -> None:
        """Empty the projection's tables."""

    # Optional: ``async apply_many(conn, events)`` folds consecutive events at
    # once (the runner falls back to ``apply`` one by one when it raises);
    # ``async rebuild(conn, pages, *, connect) -> (position, failed)`` builds
    # the whole state in the empty tables from pages of (position, tenant,
    # event type, payload) for a replay (else replay applies the log batch by
    # batch; ``connect`` opens another connection, or is None), and
    # ``async after_swap(conn)`` runs in the replay's swap transaction.


class ProjectionOutdated(RuntimeError):
    """The stored state was built with other rules or frameworks: replay it."""


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    checkpoint: int  # every position up to here is applied (or parked)
    applied: int
    parked: tuple[int, ...]
    failed_at: int | None  # the event that failed this time (will be retried)
    refused: tuple[LogEvent, ...] = ()  # messages that do not match the log: never applied


@dataclass(frozen=True, slots=True)
class _Pulling:
    """How :meth:`ProjectionRunner.run` consumes (see its docstring)."""

    batch_size: int
    fetch_timeout: float
    retry_delay: float
    on_batch: Callable[[BatchOutcome], None] | None
    batch_interval: float
    stalled_after: float = 15.0


class _ClientStalled(Exception):
    """The NATS client has been disconnected for ``stalled_after`` seconds:
    nats-py's reconnect loop ends for good on errors it does not expect, so
    the runner starts over with a new client."""


def event_from_message(msg: Msg) -> LogEvent:
    """Raises ValueError when the message lacks the LRS headers."""
    relayed = from_message(msg.headers, msg.data)
    return LogEvent(relayed.position, relayed.tenant, relayed.event_type, relayed.payload, claim=relayed)


@dataclass(frozen=True, slots=True)
class ParkedEvent:
    position: int
    tenant: str
    attempts: int
    error: str
    parked_at: datetime


async def parked_events(pool: asyncpg.Pool, name: str, tenant: str, limit: int = 200) -> list[ParkedEvent]:
    """The events of ``tenant`` the projection ``name`` parked, oldest first."""
    rows = await pool.fetch(SELECT_PARKED, name, tenant, limit)
    return [ParkedEvent(r["position"], r["tenant"], r["attempts"], r["error"], r["parked_at"]) for r in rows]


async def checkpoint_position(pool: asyncpg.Pool, name: str) -> int | None:
    """The projection's checkpoint without locking or creating it (None: never ran)."""
    position = await pool.fetchval(SELECT_POSITION, name)
    return None if position is None else int(position)


class ProjectionRunner:
    def __init__(self, pool: asyncpg.Pool, projection: Projection, *, max_attempts: int = 5) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.pool = pool
        self.projection = projection
        self.max_attempts = max_attempts

    @property
    def name(self) -> str:
        return self.projection.name

    async def checkpoint(self) -> int:
        """The stored checkpoint, creating it (at 0) for a new projection.

        Raises ProjectionOutdated when the state was built with other rules."""
        async with self.pool.acquire() as conn, conn.transaction():
            return await self._lock_checkpoint(conn)

    async def _lock_checkpoint(self, conn: asyncpg.Connection) -> int:
        p = self.projection
        await conn.execute(INSERT_CHECKPOINT, p.name, 0, p.rule_version, p.catalog_digest)
        row = await conn.fetchrow(SELECT_CHECKPOINT, p.name)
        if (row["rule_version"], row["catalog_digest"]) != (p.rule_version, p.catalog_digest):
            raise ProjectionOutdated(
                f"projection {p.name!r} was built with rule version {row['rule_version']} and frameworks "
                f"{row['catalog_digest'][:12]}; these are {p.rule_version} and {p.catalog_digest[:12]}: "
                f"run `lrs replay {p.name}`"
            )
        return int(row["position"])

    async def apply_batch(self, events: Sequence[LogEvent]) -> BatchOutcome:
        """Apply ``events`` (any order, duplicates allowed) and every event of
        the log before them that is not applied yet, in one transaction.

        A projection that keeps state in memory between batches is told when
        a transaction starts (``begin(checkpoint)``), commits
        (``committed(checkpoint)``), or fails or rolls back to a savepoint
        (``rolled_back()``: forget everything not read from the database)."""
        p = self.projection
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                checkpoint = await self._lock_checkpoint(conn)
                if hasattr(p, "begin"):
                    p.begin(checkpoint)
                outcome = await self._apply_after(conn, events, checkpoint)
        except BaseException:
            self._forget()
            raise
        if hasattr(p, "committed"):
            p.committed(outcome.checkpoint)
        return outcome

    async def _apply_after(self, conn: asyncpg.Connection, events: Sequence[LogEvent], checkpoint: int) -> BatchOutcome:
        checked, referenced, refused = await self._checked(conn, events)
        incoming = {position: e for position, e in checked.items() if position > checkpoint}
        wanted = [p for p in (*incoming, *referenced) if p > checkpoint]
        if wanted:
            last = max(wanted)
        elif refused:  # carry on from the log as far as the refused messages claimed
            last = min(max(e.position for e in refused), await log_last_position(conn))
        else:
            last = checkpoint
        if last <= checkpoint:
            return BatchOutcome(checkpoint, 0, (), None, tuple(refused))
        if len(incoming) < last - checkpoint:
            # A gap (not delivered yet, lost, refused or by reference): the log fills it.
            for record in await read_events_after(conn, checkpoint, last - checkpoint):
                incoming.setdefault(
                    record.position,
                    LogEvent(record.position, record.tenant, record.event_type, bytes(record.payload)),
                )
        run: list[LogEvent] = []
        for position in range(checkpoint + 1, last + 1):
            event = incoming.get(position)
            if event is None:
                break  # not in the log yet: cannot happen with a gapless log; wait
            run.append(event)
        outcome = await self._apply_run(conn, run, checkpoint)
        await conn.execute(UPDATE_CHECKPOINT, self.name, outcome.checkpoint)
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

    async def _apply_run(self, conn: asyncpg.Connection, run: Sequence[LogEvent], checkpoint: int) -> BatchOutcome:
        """Apply consecutive events after ``checkpoint``: all at once when the
        projection can (``apply_many``), else, or when that fails, one by one
        so that a failure is pinned on its event."""
        apply_many = getattr(self.projection, "apply_many", None)
        if apply_many is not None and len(run) > 1:
            try:
                async with conn.transaction():  # a savepoint
                    await apply_many(conn, run)
                return BatchOutcome(run[-1].position, len(run), (), None)
            except TRANSIENT_ERRORS:
                raise
            except Exception as exc:
                self._forget()
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

    def _forget(self) -> None:
        """A savepoint was rolled back: what the projection keeps in memory
        about this transaction may include the undone writes."""
        rolled_back = getattr(self.projection, "rolled_back", None)
        if rolled_back is not None:
            rolled_back()

    async def _apply_one(self, conn: asyncpg.Connection, event: LogEvent) -> bool | None:
        """True: applied; None: parked; False: failed, retry later."""
        try:
            async with conn.transaction():  # a savepoint: a failure undoes only this event
                await self.projection.apply(conn, event)
            return True
        except TRANSIENT_ERRORS:
            raise
        except Exception as exc:
            self._forget()
            error = repr(exc)
            attempts = await conn.fetchval(RECORD_FAILURE, self.name, event.position, error)
            if attempts < self.max_attempts:
                log.warning(
                    "projection.event_failed", projection=self.name, position=event.position,
                    tenant=event.tenant, attempts=attempts, error=error,
                )
                return False
            await conn.execute(INSERT_PARKED, self.name, event.position, event.tenant, attempts, error)
            await conn.execute(DELETE_FAILURE, self.name, event.position)
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
                checkpoint = await self._lock_checkpoint(conn)  # one writer at a time, as for batches
                if await conn.fetchval(SELECT_PARKED_ONE, self.name, position, tenant) is None:
                    raise LookupError(f"no event at position {position} is parked for tenant {tenant!r}")
                (record,) = await read_events_after(conn, position - 1, 1)
                event = LogEvent(record.position, record.tenant, record.event_type, bytes(record.payload))
                if hasattr(p, "begin"):
                    p.begin(checkpoint)
                try:
                    async with conn.transaction():  # a savepoint: a failure undoes only the event
                        await p.apply(conn, event)
                except TRANSIENT_ERRORS:
                    raise
                except Exception as exc:
                    self._forget()
                    await conn.execute(UPDATE_PARKED, self.name, position, repr(exc))
                    log.warning("projection.retry_failed", projection=self.name, position=position, error=repr(exc))
                    return repr(exc)
                await conn.execute(DELETE_PARKED, self.name, position)
        except BaseException:
            self._forget()
            raise
        if hasattr(p, "committed"):
            p.committed(checkpoint)
        log.info("projection.unparked", projection=self.name, position=position, tenant=tenant)
        return None

    async def catch_up(self, batch_size: int = 1000) -> int:
        """Apply everything in the Postgres log (no NATS); returns the checkpoint."""
        while True:
            checkpoint = await self.checkpoint()
            async with self.pool.acquire() as conn:
                records = await read_events_after(conn, checkpoint, batch_size)
            if not records:
                return checkpoint
            outcome = await self.apply_batch(_log_events(records))
            if outcome.failed_at is not None:
                return outcome.checkpoint

    async def follow(
        self,
        stop: asyncio.Event,
        wake: asyncio.Event,
        *,
        batch_size: int = 1000,
        poll_interval: float = 1.0,
        on_batch: Callable[[BatchOutcome], None] | None = None,
    ) -> None:
        """Follow the Postgres log directly (no NATS configured): catch up
        whenever ``wake`` is set (the writer's commit hook) or every
        ``poll_interval`` seconds, until ``stop`` is set."""
        async with self.pool.acquire() as lock_conn:
            key = leader_lock.lock_key(f"projection:{self.name}")
            while not await leader_lock.try_lock(lock_conn, key):
                await _sleep_or_stop(stop, poll_interval)
                if stop.is_set():
                    return
            stop_retries = serve_retry_requests(self, lock_conn)  # only the leader applies events
            try:
                while not stop.is_set():
                    wake.clear()
                    try:
                        checkpoint = await self.catch_up(batch_size)
                    except TRANSIENT_ERRORS as exc:
                        log.warning("projection.catch_up_failed", projection=self.name, error=repr(exc))
                    else:
                        if on_batch is not None:
                            on_batch(BatchOutcome(checkpoint, 0, (), None))
                    waiter = asyncio.ensure_future(wake.wait())
                    stopper = asyncio.ensure_future(stop.wait())
                    try:
                        await asyncio.wait({waiter, stopper}, timeout=poll_interval, return_when=asyncio.FIRST_COMPLETED)
                    finally:
                        waiter.cancel()
                        stopper.cancel()
            finally:
                await stop_retries()
                await leader_lock.unlock(lock_conn, key)

    # -- JetStream --------------------------------------------------------------

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
    ) -> None:
        """Consume until ``stop`` is set, with a durable pull consumer named
        ``projection-<name>`` on the LRS_EVENTS stream.  One runner per
        projection consumes (it holds a Postgres advisory lock); others wait.

        A batch that was not full is followed by a pause of ``batch_interval``
        seconds before the next fetch: a runner that keeps up would otherwise
        commit a transaction for every few events, and the fixed cost of each
        (a dozen statements, a commit) then outweighs the events' own.  The
        pause bounds the transactions per second and adds at most its length
        to the lag; a full batch (a backlog) is followed by the next at once.

        A NATS connection that has been down for ``stalled_after`` seconds is
        replaced by a new one (see :class:`_ClientStalled`)."""
        async with self.pool.acquire() as lock_conn:
            key = leader_lock.lock_key(f"projection:{self.name}")
            while not await leader_lock.try_lock(lock_conn, key):
                log.info("projection.waiting_for_lock", projection=self.name)
                await _sleep_or_stop(stop, 1.0)
                if stop.is_set():
                    return
            stop_retries = serve_retry_requests(self, lock_conn)  # only the leader applies events
            try:
                pulling = _Pulling(batch_size, fetch_timeout, retry_delay, on_batch, batch_interval, stalled_after)
                while True:
                    try:
                        await self._consume(nats_url, stop, pulling)
                        break
                    except _ClientStalled:
                        log.warning("projection.nats_client_replaced", projection=self.name, after_s=stalled_after)
            finally:
                await stop_retries()
                await leader_lock.unlock(lock_conn, key)

    async def _consume(self, nats_url: str, stop: asyncio.Event, pulling: _Pulling) -> None:
        nc = await nats.connect(
            servers=nats_servers(nats_url), name=f"lrs-projection-{self.name}", allow_reconnect=True,
            max_reconnect_attempts=-1, reconnect_time_wait=1.0, connect_timeout=2, **connect_options(),
        )
        use_fast_header_parse(nc)  # every message carries the relay's six headers
        try:
            js = nc.jetstream()
            durable = f"projection-{self.name}"
            await self._ensure_consumer(js, durable, stop)
            if stop.is_set():
                return
            pull = PullConsumer(nc, STREAM_NAME, durable)
            await pull.start()
            try:
                await self._pull_batches(pull, js, durable, stop, pulling)
            finally:
                await _bounded(pull.close())
        finally:
            await _bounded(nc.close())  # a client that stopped reconnecting may never finish closing

    async def _pull_batches(
        self, pull: PullConsumer, js: nats.js.JetStreamContext, durable: str, stop: asyncio.Event, pulling: _Pulling
    ) -> None:
        batch_size, retry_delay = pulling.batch_size, pulling.retry_delay
        loop = asyncio.get_running_loop()
        next_fetch = 0.0
        disconnected_since: float | None = None
        while not stop.is_set():
            if pull.connected:
                disconnected_since = None
            elif disconnected_since is None:
                disconnected_since = loop.time()
            elif loop.time() - disconnected_since >= pulling.stalled_after:
                raise _ClientStalled
            pause = next_fetch - loop.time()
            if pause > 0:
                await _sleep_or_stop(stop, pause)
                if stop.is_set():
                    break
            try:
                messages = await pull.fetch(batch_size, timeout=pulling.fetch_timeout)
            except PullRefused as exc:  # the consumer is gone, or JetStream is not there yet
                log.warning("projection.fetch_refused", projection=self.name, error=str(exc))
                await _sleep_or_stop(stop, retry_delay)
                await self._ensure_consumer(js, durable, stop)
                continue
            except (nats.errors.Error, OSError) as exc:
                log.warning("projection.fetch_failed", projection=self.name, error=repr(exc))
                await _sleep_or_stop(stop, retry_delay)
                continue
            if not messages:
                continue
            outcome = await self._handle(pull, messages, retry_delay)
            next_fetch = loop.time() + pulling.batch_interval if len(messages) < batch_size else 0.0
            if outcome is None:
                await _sleep_or_stop(stop, retry_delay)
            elif pulling.on_batch is not None:
                pulling.on_batch(outcome)

    async def _ensure_consumer(self, js: nats.js.JetStreamContext, durable: str, stop: asyncio.Event) -> None:
        config = load_consumer_config(durable_name=durable)
        while not stop.is_set():
            try:
                await js.add_consumer(STREAM_NAME, config)
                return
            except nats.js.errors.NotFoundError:
                log.info("projection.waiting_for_stream", projection=self.name, stream=STREAM_NAME)
            except (nats.errors.Error, OSError) as exc:
                log.warning("projection.consumer_failed", projection=self.name, error=repr(exc))
            await _sleep_or_stop(stop, 1.0)

    async def _handle(self, pull: PullConsumer, messages: list[Msg], retry_delay: float) -> BatchOutcome | None:
        events: list[tuple[Msg, LogEvent]] = []
        for msg in messages:
            try:
                events.append((msg, event_from_message(msg)))
            except (KeyError, ValueError):
                projection_health.note_refused(self.name, "unreadable")
                log.error("projection.foreign_message", projection=self.name, subject=msg.subject, alert=True)
                await msg.term()
        try:
            outcome = await self.apply_batch([event for _, event in events])
        except TRANSIENT_ERRORS as exc:
            log.warning("projection.batch_failed", projection=self.name, error=repr(exc))
            for msg, _ in events:
                await msg.nak(delay=retry_delay)
            return None
        refused = {id(event) for event in outcome.refused}
        for msg, event in events:
            if id(event) in refused:
                await msg.term()  # never again: the log has (or had) its position
        await pull.ack_all(
            [msg for msg, event in events if event.position <= outcome.checkpoint and id(event) not in refused]
        )
        for msg, event in events:
            if event.position > outcome.checkpoint and id(event) not in refused:
                await msg.nak(delay=retry_delay)
        return outcome


def _log_events(records: Sequence[EventRecord]) -> list[LogEvent]:
    return [LogEvent(r.position, r.tenant, r.event_type, bytes(r.payload)) for r in records]


async def _bounded(closing: Awaitable[None], seconds: float = 5.0) -> None:
    try:
        await asyncio.wait_for(closing, seconds)
    except (asyncio.TimeoutError, nats.errors.Error, OSError) as exc:
        log.warning("projection.nats_close_failed", error=repr(exc))


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except asyncio.TimeoutError:
        pass


async def parked_count(pool: asyncpg.Pool, name: str) -> int:
    """How many events the projection ``name`` has set aside."""
    return int(await pool.fetchval(COUNT_PARKED, name))
