"""The relay: the Postgres event log, in position order, onto JetStream.

One relay per deployment publishes (the leader, holding a Postgres session
advisory lock); others wait for the lock.  The leader loops:

1. (after every NATS (re)connection and every failed publish) *resync*: make
   sure the stream exists, and resume after ``min(checkpoint, last Lrs-Position
   on the stream)`` (after the checkpoint when the stream's last message is
   gone: interest retention removes what every consumer acknowledged, so an
   empty stream is normal, and PostgreSQL is the record).  A stream that lost
   acknowledged messages (a crashed or wiped nats-server) so gets the gap
   again while it still holds its last message; when it holds none, the
   consumers fill any gap from the log (docs/operations.md); a relay that died between the
   acknowledgements and its checkpoint republishes at most one batch, which the
   stream drops as duplicates (same ``Nats-Msg-Id`` inside its window).
2. read up to ``batch_size`` events after the position, publish them pipelined,
   wait for every acknowledgement, then checkpoint in ``relay_checkpoints``.
3. with nothing to do, sleep until ``notify()`` (hooked to the writer's
   commits) or ``poll_interval``; woken, and after a round that read up to
   the head while more commits landed, let ``linger`` pass first, so that
   a busy log is published in fewer, larger rounds.

Ingest never waits on the relay: ``notify`` only sets an event, and the relay
only reads the log.  NATS outages are retried forever with capped backoff.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any, Callable

import asyncpg
import structlog

from lrs import metrics
from lrs.nats.bus import BUS_ERRORS, Bus, load_stream_config
from lrs.nats.event_frames import EventBatch
from lrs.event_contract import DEFAULT_INLINE_MAX_BYTES
from lrs.eventlog import EventRecord, stored_texts_of
from lrs.store import leader_lock
from lrs.store.checkpoints import get_checkpoint, set_checkpoint
from lrs.store.log_reader import last_position as log_last_position
from lrs.store.log_reader import read_events_after
from lrs.tasks import cancel_and_wait

log = structlog.get_logger("lrs.relay")

DEFAULT_NAME = "jetstream"
# Payloads above DEFAULT_INLINE_MAX_BYTES travel by reference
# (lrs/event_contract.py, docs/contracts.md): the message carries position,
# ids and hashes, and consumers read the payload from PostgreSQL.  So no
# event, whatever its size, can exceed the server's max_payload and stop the
# stream.

# Room left under the server's max_payload for the headers of an inline message.
HEADER_ROOM = 4096


class Backoff:
    """Capped exponential delays with jitter: 0.1 s, 0.2 s, ... up to ``maximum``."""

    def __init__(self, initial: float = 0.1, maximum: float = 5.0) -> None:
        self.initial, self.maximum = initial, maximum
        self._next = initial

    def reset(self) -> None:
        self._next = self.initial

    async def sleep(self) -> None:
        delay = self._next * random.uniform(0.8, 1.2)
        self._next = min(self._next * 2, self.maximum)
        await asyncio.sleep(delay)

# How long a stopping relay waits to save its checkpoint (the shutdown goes on without).
STOP_CHECKPOINT_TIMEOUT_S = 5.0


class Relay:
    """Publishes the event log to JetStream; see the module docstring.

    ``nats`` is a URL, or several separated by commas (the relay then owns its
    ``Bus``, whose stream keeps ``stream_replicas`` copies), or a ``Bus`` the
    caller owns.  Use ``await start()`` / ``await stop()``, or ``await run()``.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        nats: str | Bus,
        *,
        name: str = DEFAULT_NAME,
        batch_size: int = 1000,
        poll_interval: float = 0.5,
        lock_retry_interval: float = 1.0,
        backoff_max: float = 5.0,
        linger: float = 0.02,
        checkpoint_interval: float = 1.0,
        inline_max_bytes: int = DEFAULT_INLINE_MAX_BYTES,
        stream_replicas: int | None = None,
        stalled_after: float = 15.0,
    ) -> None:
        self.name = name
        self._pool = pool
        self._owns_bus = isinstance(nats, str)
        if isinstance(nats, str):
            self.bus = Bus(nats, stream_config=load_stream_config(replicas=stream_replicas))
        else:
            self.bus = nats
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._lock_retry_interval = lock_retry_interval
        self._backoff_max = backoff_max
        self._linger = linger
        self._checkpoint_interval = checkpoint_interval
        self._inline_max_bytes = inline_max_bytes
        self.last_error: str | None = None  # the last publish or resync failure, until a publish succeeds
        self.last_error_at: float | None = None  # time.time() of it
        self._stalled_after = stalled_after  # disconnected this long: a new NATS client
        self._lock_key = leader_lock.lock_key(f"relay:{name}")
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.is_leader = False
        self.published_position = 0  # last position known to be on the stream
        self.log_head = 0
        self.batches_published = 0  # by this instance, while leader
        self._caught_up = False
        self._head_unknown = True
        # This relay's labelled series, each looked up on its first use (so a
        # standby still sets none) and kept: ``labels()`` builds its key from
        # keyword arguments under a lock, six to eight times a round, about
        # 1 µs of the relay's CPU a statement at batch 100 (docs/scaling.md,
        # branch b100y).
        self._series_by: dict[tuple[object, str], Any] = {}
        # Called with every batch of events read from the log and their stored
        # times as format_stored writes them (lrs.eventlog.stored_texts_of),
        # before the batch is published (lrs.anchor_writer checks the chain on
        # them); must not raise.
        self.read_hooks: list[Callable[[list[EventRecord], list[str]], None]] = []

    # -- lifecycle ------------------------------------------------------------

    def notify(self, position: int | None = None) -> None:
        """Wake the relay (hook for the writer's commit callbacks); never blocks."""
        if position is None:
            self._head_unknown = True  # a commit that did not say where the head is
        elif position > self.log_head:
            self.log_head = position
        self._wake.set()

    async def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self.run(), name=f"relay:{self.name}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)
        if self._owns_bus:
            await self.bus.close()

    def status(self) -> dict[str, object]:
        return {
            "running": self._task is not None and not self._task.done(),
            "leader": self.is_leader,
            "nats": "connected" if self.bus.connected else "disconnected",
            "published_position": self.published_position,
            "log_head": self.log_head,
            "lag": max(0, self.log_head - self.published_position),
            "last_error": self.last_error,
            "last_error_at": self.last_error_at,
        }

    async def run(self, *, until_caught_up: bool = False) -> None:
        """Relay until cancelled (or, with ``until_caught_up``, until the stream
        holds the whole log as it was when last read)."""
        connecting = asyncio.create_task(self.bus.connect(), name=f"relay:{self.name}:connect")
        backoff = Backoff(maximum=self._backoff_max)
        try:
            while True:
                try:
                    async with self._pool.acquire() as conn:
                        if await self._run_on(conn, until_caught_up=until_caught_up):
                            return
                except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, asyncio.TimeoutError) as exc:
                    log.warning("relay.database_error", relay=self.name, error=repr(exc))
                    await backoff.sleep()
                except Exception:  # a relay must not die: log it and start over
                    log.exception("relay.failed", relay=self.name)
                    await backoff.sleep()
        finally:
            self._set_leader(False)
            connecting.cancel()

    # -- leadership -----------------------------------------------------------

    async def _run_on(self, conn: asyncpg.Connection, *, until_caught_up: bool) -> bool:
        announced = False
        while not await leader_lock.try_lock(conn, self._lock_key):
            if not announced:
                log.info("relay.standby", relay=self.name)
                announced = True
            await asyncio.sleep(self._lock_retry_interval)
        self._set_leader(True)
        log.info("relay.leader", relay=self.name)
        try:
            return await self._lead(conn, until_caught_up=until_caught_up)
        finally:
            self._set_leader(False)
            if not conn.is_closed():
                try:
                    await leader_lock.unlock(conn, self._lock_key)
                except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
                    pass  # the pool's reset (or the session's end) releases it anyway

    def _set_leader(self, leader: bool) -> None:
        self.is_leader = leader
        self._series(metrics.RELAY_LEADER).set(1 if leader else 0)

    # -- the leader's loop ----------------------------------------------------

    async def _lead(self, conn: asyncpg.Connection, *, until_caught_up: bool) -> bool:
        position: int | None = None  # None: resync before publishing
        synced_generation = -1
        backoff = Backoff(maximum=self._backoff_max)
        # The checkpoint is only an optimisation: losing its last update in a
        # crash means republishing, and the stream drops the repeats by
        # Nats-Msg-Id.  So its commits need not wait for the disk.  (The pool
        # resets session settings when the connection is released.)
        await conn.execute("SET synchronous_commit = off")
        self.published_position = await get_checkpoint(conn, self.name)
        checkpointed = self.published_position
        checkpointed_at = 0.0
        quiet = False  # the last wait for a commit ended with none
        # Woken by commit notifications since the last wait that timed out:
        # each carries its head, and the wake-up is cleared before every read,
        # so a commit after the read wakes the next wait at once.  While they
        # flow, a relay caught up to the notified head skips the head read
        # (a PostgreSQL round trip per round under single-statement POSTs)
        # and waits; a wait that times out (a lost listener, a commit nobody
        # announced) reads the head again.
        notified = False
        loop = asyncio.get_running_loop()
        try:
            while True:
                self._wake.clear()  # before reading, so a commit during the read is not missed
                if position is None or until_caught_up or not notified or self._head_unknown:
                    self._head_unknown = False
                    # Commit notifications only come from this process's writer
                    # (or, across processes, the commit listener); the database
                    # also knows about commits nobody announced.
                    self._observe_head(await log_last_position(conn))
                else:
                    self._observe_head(self.log_head)  # refresh the gauges
                if not self.bus.connected:
                    await self.bus.replace_stalled_client(self._stalled_after)
                    await self.bus.wait_connected(self._poll_interval)
                    continue
                if position is None or self.bus.generation != synced_generation:
                    generation = self.bus.generation
                    try:
                        position = await self._resync(conn)
                    except BUS_ERRORS as exc:
                        self._note_error(exc)
                        log.warning("relay.resync_failed", relay=self.name, error=repr(exc))
                        await backoff.sleep()
                        continue
                    synced_generation = generation
                if position >= self.log_head:
                    # Caught up: the checkpoint follows at once when asked to stop
                    # here, when it last moved checkpoint_interval ago, or after a
                    # poll interval with no commit; not after every round of a busy
                    # log (single-statement POSTs catch the relay up every round,
                    # and a checkpoint per round was a PostgreSQL transaction per
                    # 20-odd statements).  A crash republishes at most that much,
                    # and the stream drops the repeats.
                    if checkpointed != position and (
                        until_caught_up or quiet or loop.time() - checkpointed_at >= self._checkpoint_interval
                    ):
                        await set_checkpoint(conn, self.name, position)
                        checkpointed, checkpointed_at = position, loop.time()
                    self._note_caught_up(True)
                    if until_caught_up:
                        return True
                    quiet = not await self._idle()
                    notified = not quiet
                    continue
                quiet = False
                events = await read_events_after(conn, position, self._batch_size)
                if not events:
                    quiet = not await self._idle()
                    notified = not quiet
                    continue
                # Each event's stored time is formatted once, for the hooks (the
                # anchor writer hashes it) and for the frames (Lrs-Stored).
                texts = stored_texts_of(events)
                for hook in self.read_hooks:
                    hook(events, texts)
                try:
                    inline_max = min(self._inline_max_bytes, self.bus.max_payload - HEADER_ROOM)
                    result = await self.bus.publish_batch(EventBatch(events, texts, inline_max))
                except BUS_ERRORS as exc:
                    self._series(metrics.RELAY_PUBLISH_FAILURES).inc()
                    self._note_error(exc)
                    # An alert: the stream does not move until this batch is stored.
                    log.error(
                        "relay.publish_failed",
                        relay=self.name,
                        after_position=position,
                        events=len(events),
                        error=repr(exc),
                        alert=True,
                    )
                    position = None
                    await backoff.sleep()
                    continue
                backoff.reset()
                if self.last_error is not None:
                    self.last_error = None
                    self._series(metrics.RELAY_FAILING).set(0)
                self._note_caught_up(False)
                position = events[-1].position
                # Under load the checkpoint moves at most every checkpoint_interval
                # (and whenever the relay catches up): a crash republishes at most
                # that much, and the stream drops the repeats.
                if loop.time() - checkpointed_at >= self._checkpoint_interval:
                    await set_checkpoint(conn, self.name, position)
                    checkpointed, checkpointed_at = position, loop.time()
                self._observe_published(position, result.stored, result.duplicates)
                if self._linger and not until_caught_up and len(events) < self._batch_size \
                        and self.log_head > position:
                    # Commits landed while this round published (a short
                    # read: it had read up to the head).  Let a linger's
                    # worth more land before the next read, as after a
                    # wait for a commit (_idle): under single-statement
                    # POSTs a commit lands during nearly every publish, and
                    # the relay went straight back for it, a round (an event
                    # read, an acknowledged publish) per group or two.
                    await asyncio.sleep(self._linger)
        except asyncio.CancelledError:
            # Stopped (the service's shutdown): the checkpoint follows what
            # the stream acknowledged rather than staying up to
            # checkpoint_interval behind, so a restart later than the
            # stream's duplicate window republishes nothing consumers would
            # take for new.
            await self._checkpoint_on_stop(position, checkpointed)
            raise

    async def _checkpoint_on_stop(self, position: int | None, checkpointed: int) -> None:
        """Save ``position`` (on the stream: published, or resynced to) when
        the checkpoint is behind it.  On a connection of its own: the
        leader's may be in the middle of the query the cancellation
        interrupted; the leader lock stays held until this returns."""
        if position is None or position <= checkpointed:
            return
        try:
            await asyncio.wait_for(set_checkpoint(self._pool, self.name, position), STOP_CHECKPOINT_TIMEOUT_S)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, asyncio.TimeoutError) as exc:
            log.warning("relay.stop_checkpoint_failed", relay=self.name, position=position, error=repr(exc))

    async def _resync(self, conn: asyncpg.Connection) -> int:
        self._series(metrics.RELAY_RESYNCS).inc()
        await self.bus.ensure_stream(update=False)  # changing it is an admin's (lrs.nats.permissions)
        stream_position = await self.bus.last_position()
        checkpoint = await get_checkpoint(conn, self.name)
        if stream_position is None:
            # The stream's last message is gone after the stream acknowledged
            # it (every consumer acknowledged it, none selects it, or max_age):
            # resume after the checkpoint, not from the start of the log.
            stream_position = checkpoint
        resume = min(checkpoint, stream_position)
        event = "relay.stream_behind_checkpoint" if stream_position < checkpoint else "relay.resync"
        (log.warning if stream_position < checkpoint else log.info)(
            event,
            relay=self.name,
            checkpoint=checkpoint,
            stream_position=stream_position,
            resume_after=resume,
        )
        self.published_position = resume
        return resume

    async def _idle(self) -> bool:
        """Wait for a commit or the poll interval: whether a commit woke it."""
        try:
            await asyncio.wait_for(self._wake.wait(), self._poll_interval)
        except asyncio.TimeoutError:
            return False
        if self._linger:
            # Woken by a commit: let the next few commits land too, so that
            # busy periods make fewer, larger rounds (reads and publishes).
            # Each round costs the relay and nats-server a fixed amount (the
            # head and event reads, one acknowledged publish): with 5 ms,
            # single-statement POSTs (groups of a dozen statements) made a
            # round per group or two, and the rounds cost more CPU per
            # statement than the writing did (bench/results/ingest-ab-cpu-*).
            # 20 ms more on the way to the stream is nothing next to the
            # projections' lag budget (a second).
            await asyncio.sleep(self._linger)
        return True

    def observe_head(self, head: int | None = None) -> None:
        """Set the relay's gauges from what it knows now, with ``head`` (the
        log head as PostgreSQL has it) if given.  ``/metrics`` calls this at
        every scrape: the loop sets them too, but a relay stuck in a publish
        or waiting for NATS does not run its loop, and its lag would read as
        it was before it got stuck."""
        self._observe_head(self.log_head if head is None else head)
        self._series(metrics.RELAY_PUBLISHED_POSITION).set(self.published_position)

    def _observe_head(self, head: int) -> None:
        self.log_head = max(self.log_head, head)
        self._series(metrics.RELAY_LOG_HEAD).set(self.log_head)
        self._series(metrics.RELAY_NATS_CONNECTED).set(1 if self.bus.connected else 0)
        self._set_lag()

    def _observe_published(self, position: int, stored: int, duplicates: int) -> None:
        self.published_position = position
        self.batches_published += 1
        self._series(metrics.RELAY_PUBLISHED_POSITION).set(position)
        if stored:
            self._series(metrics.RELAY_MESSAGES, outcome="stored").inc(stored)
        if duplicates:
            self._series(metrics.RELAY_MESSAGES, outcome="duplicate").inc(duplicates)
        self._set_lag()

    def _note_error(self, exc: BaseException) -> None:
        self.last_error = repr(exc)
        self.last_error_at = time.time()
        self._series(metrics.RELAY_FAILING).set(1)

    def _series(self, metric: Any, outcome: str = "") -> Any:
        """``metric.labels(relay=self.name[, outcome=outcome])``, kept once made."""
        key = (metric, outcome)
        series = self._series_by.get(key)
        if series is None:
            series = metric.labels(relay=self.name, outcome=outcome) if outcome else metric.labels(relay=self.name)
            self._series_by[key] = series
        return series

    def _set_lag(self) -> None:
        self._series(metrics.RELAY_LAG).set(max(0, self.log_head - self.published_position))

    def _note_caught_up(self, caught_up: bool) -> None:
        if caught_up and not self._caught_up:
            log.info("relay.caught_up", relay=self.name, position=self.published_position)
        self._caught_up = caught_up
