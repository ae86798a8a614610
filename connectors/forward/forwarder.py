"""``lrs forward``: LRS_EVENTS -> filter -> another LRS, acknowledged after acceptance.

A durable pull consumer (``schemas/nats/forward-consumer.json``, named by
``--name``) reads statement events in stream order.  Each fetched batch is
handled in order:

* a statement the filter does not select is acknowledged at once;
* the selected ones are POSTed together through :class:`LrsSink` (retries,
  backoff, 429, narrowing a refused batch down to the refused statements);
  each is acknowledged only once the target accepted it;
* a statement the target refuses (400, 409, 413) is parked in the
  dead-letter stream with the target's message, then acknowledged; a 409
  says why it may be (connectors.forward.model.refusal_hint: the target
  holds another statement under the id, the form it got before a learner
  was erased here);
* when the target is unreachable (or answers 502/503/504) the batch is held:
  retried with backoff for as long as it takes, its messages kept from being
  redelivered (``in_progress``), and nothing is counted against them;
* when the target fails on it otherwise (a 500), a batch is retried one
  statement at a time, and a failing statement is negatively acknowledged
  for a later delivery; after ``max_deliveries`` deliveries it is parked.

Sealed statements (personal data sealed, the default; docs/privacy.md) are
opened before they are sent, exactly as GET /xapi/statements returns them,
by the opener the composition root gives (connectors.forward.opening): an
erased learner's statements go in the erased form.  The log checks, the
filter and the dead-letter stream see the stored form; when sealed
statements cannot be opened (no privacy key) the forwarder stops
(:class:`CannotOpen`) and sends nothing of the batch.

Statement ids are the stored ids, so a delivery repeated after a crash or a
lost acknowledgement is accepted by the target as the same statement.  A
second copy of an event already forwarded (a message replayed onto the
stream) is not sent at all: the forwarder keeps the positions it dealt with
in PostgreSQL as a low-water mark (connectors.forward.checkpoint) and
acknowledges a first delivery of one of them without sending it; a message
overtaken by later ones is still sent whenever it comes.
Forwarding is a consumer like any other: it never slows the LRS's writes.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timezone
from typing import Any, Callable

import asyncpg
import msgspec
import nats
import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.js.api import ConsumerInfo

from connectors.forward.connection import connect_unless_stopped, ensure_dead_letter_stream
from connectors.forward.definitions import DEAD_LETTER_STREAM, EVENTS_STREAM, consumer_config
from connectors.forward.jetstream_messages import delivery_count, kept_in_progress, unreadable_event
from connectors.forward.model import (
    Action, ForwardFilter, LogStatement, dead_letter_headers, dead_letter_subject, event_from_message,
    failure_action, outgoing_statement, refusal_hint,
)
from connectors.forward.checkpoint import MAX_RUNS, ForwardCheckpoint, is_replay
from connectors.forward.logcheck import LogCheck
from connectors.forward.logfill import (
    LogDelivery, holes_up_to, holes_without, log_message, read_holes, relayed_position,
)
from connectors.forward.opening import CannotOpen, OpenStored
from connectors.forward.run import ForwardOptions, ForwardStats, say
from connectors.framework.sink import BatchOutcome, LrsSink, Outgoing, SinkFatal, SinkUnavailable
from lrs.event_contract import POSITION_HEADER

STATEMENT_EVENT = "statement"


class Forwarder:
    def __init__(
        self,
        nats_url: str,
        sink: LrsSink,
        selection: ForwardFilter,
        options: ForwardOptions,
        log_check: LogCheck,
        *,
        open_stored: OpenStored,
        on_progress: Callable[[ForwardStats], None] | None = None,
    ) -> None:
        self.nats_url = nats_url
        self.log_check = log_check
        self.open_stored = open_stored
        self.sink = sink
        self.selection = selection
        self.options = options
        self.stats = ForwardStats()
        self._on_progress = on_progress
        self._stop = asyncio.Event()
        self.reached_nats = False  # whether the run connected to NATS (it may be stopped before)
        self._js: Any = None
        self.checkpoint: ForwardCheckpoint | None = None  # read from PostgreSQL when the run starts
        self._log_deliveries: dict[int, int] = {}  # position -> times read from the log and sent (failing)
        self._log_retry_at: dict[int, float] = {}  # position -> when a statement the target failed on is due again

    async def run(self, stop: asyncio.Event | None = None) -> ForwardStats:
        """Forward until ``stop`` is set (or, with ``until_caught_up``, until
        the consumer has nothing pending).  Raises :class:`SinkFatal` when the
        target refuses the credentials or the URL, :class:`CannotOpen` when
        sealed statements arrive and no key opens them."""
        if stop is not None:
            self._stop = stop
        self.checkpoint = ForwardCheckpoint(self.log_check.pool, self.options.name)
        await self.checkpoint.load()
        if self.checkpoint.fresh and self.options.deliver == "all":
            # All of the log: what the stream no longer holds comes from the log (connectors.forward.logfill).
            self.checkpoint.fresh = False
        nc = await connect_unless_stopped(self.nats_url, self.options.name, self._stop)
        if nc is None:  # stopped while NATS was still away
            return self.stats
        self.reached_nats = True
        try:
            self._js = nc.jetstream()
            await ensure_dead_letter_stream(self._js)
            info = await self._ensure_consumer()
            if info is None:
                return self.stats
            if info.delivered is not None and info.delivered.consumer_seq:
                # No checkpoint, but a consumer that delivered before (a crash
                # before the first save): its first message now may come
                # after ones still awaiting their redelivery.
                self.checkpoint.fresh = False
            sub = await self._js.pull_subscribe_bind(durable=self.options.name, stream=EVENTS_STREAM)
            while not self._stop.is_set():
                try:
                    messages = await sub.fetch(self.options.batch_size, timeout=self.options.fetch_timeout)
                except (nats.errors.TimeoutError, asyncio.TimeoutError):  # nothing to fetch (nats-py raises either)
                    if await self._fill_while_idle(nc, sub):
                        continue
                    if self.options.until_caught_up and await self._caught_up(nc, sub):
                        break
                    continue
                except (nats.errors.Error, OSError) as exc:
                    say(f"fetch failed ({exc!r}); retrying")
                    await self._sleep(1.0)
                    continue
                try:
                    await self._handle(messages)
                    await self._advance_checkpoint()
                    if self.checkpoint.mark.gaps():  # statements not done below the highest: gone, or awaiting a retry
                        await self._filled_from_log(nc, sub, idle=False)
                except (nats.errors.Error, OSError) as exc:
                    # NATS went away mid-batch: unacknowledged messages come back.
                    say(f"JetStream error ({exc!r}); unacknowledged statements will be redelivered")
                    await self._sleep(1.0)
                if self._on_progress is not None:
                    self._on_progress(self.stats)
            await nc.flush()
        finally:
            await nc.close()
        return self.stats

    async def _ensure_consumer(self) -> ConsumerInfo | None:
        config = consumer_config(self.options.name, self.options.deliver)
        while not self._stop.is_set():
            try:
                return await self._js.add_consumer(EVENTS_STREAM, config)
            except nats.js.errors.NotFoundError:
                say(f"waiting for the {EVENTS_STREAM} stream")
            except nats.js.errors.BadRequestError as exc:
                # An existing consumer with settings that cannot change (deliver policy).
                info = await self._js.consumer_info(EVENTS_STREAM, self.options.name)
                say(f"using the existing consumer {self.options.name} as it is ({exc.description})")
                return info
            await self._sleep(1.0)
        return None

    async def _fill_while_idle(self, nc: nats.NATS, sub: Any) -> bool:
        """With nothing to fetch, forward from the log batch after batch while
        the stream has nothing for this consumer; whether anything was read."""
        filled = False
        try:
            while not self._stop.is_set() and await self._filled_from_log(nc, sub, idle=True):
                filled = True
                if self._on_progress is not None:
                    self._on_progress(self.stats)
        except (nats.errors.Error, OSError) as exc:
            say(f"JetStream error ({exc!r}) while forwarding from the log; trying again")
            await self._sleep(1.0)
        return filled

    async def _filled_from_log(self, nc: nats.NATS, sub: Any, *, idle: bool) -> int:
        """Forward up to a batch of the statements the stream will not deliver
        any more (connectors.forward.logfill); the number of log events read.
        ``idle``: nothing came from the stream, so positions up to the relay's
        checkpoint count too, not only those below the highest one done."""
        if self.checkpoint is None or self.checkpoint.fresh:
            return 0
        try:
            relayed = await relayed_position(self.log_check.pool) if idle else 0
            await nc.flush()
            info = await sub.consumer_info()
            if info.num_ack_pending:
                return 0  # a message awaiting its acknowledgement or a retry may be one of the holes
            limit = relayed if idle and info.num_pending == 0 else self.checkpoint.mark.highest
            now = asyncio.get_running_loop().time()
            waiting = [position for position, due in self._log_retry_at.items() if due > now]
            holes = holes_without(holes_up_to(self.checkpoint.mark, limit), waiting)
            rows = await read_holes(self.log_check.pool, holes, self.options.batch_size) if holes else []
        except (nats.errors.Error, OSError, asyncpg.PostgresError) as exc:
            say(f"could not look for statements the stream no longer holds ({exc!r}); trying again later")
            return 0
        if not rows:
            return 0
        selected: list[tuple[Any, LogStatement]] = []
        for row in rows:
            position = row["position"]
            if row["event_type"] != STATEMENT_EVENT:
                self.checkpoint.mark.record(position)
                continue
            headers, payload = log_message(row)
            event = event_from_message(headers, payload)
            if not self.selection.matches(event.tenant, event.statement):
                self.checkpoint.mark.record(position)
                self.stats.skipped += 1
                continue
            deliveries = self._log_deliveries[position] = self._log_deliveries.get(position, 0) + 1
            selected.append((LogDelivery(headers, payload, deliveries), event))
        if selected:
            await self._deliver(selected)
        now = asyncio.get_running_loop().time()
        for delivery, event in selected:
            if self.checkpoint.mark.is_done(event.position):
                self._log_deliveries.pop(event.position, None)
                self._log_retry_at.pop(event.position, None)
            else:  # failed: not read again before its retry delay, as a message negatively acknowledged
                self._log_retry_at[event.position] = now + (delivery.retry_after or 0.0)
        await self._advance_checkpoint()
        return len(rows)

    async def _caught_up(self, nc: nats.NATS, sub: Any) -> bool:
        try:
            await nc.flush()
            info = await sub.consumer_info()
        except (nats.errors.Error, OSError):
            return False  # ask again after the next fetch
        # A statement read from the log awaiting its retry is pending too.
        waiting = any(not self.checkpoint.mark.is_done(p) for p in self._log_retry_at) if self.checkpoint else False
        return info.num_pending == 0 and info.num_ack_pending == 0 and not waiting

    async def _advance_checkpoint(self) -> None:
        if self.checkpoint is None:
            return
        forgotten = self.checkpoint.forgotten
        try:
            await self.checkpoint.save()
        except asyncpg.PostgresError as exc:  # the next batch tries again; copies meanwhile go to the target's idempotency
            say(f"could not record the checkpoint ({exc!r})")
        if self.checkpoint.forgotten > forgotten:
            say(f"ALERT more than {MAX_RUNS} runs of positions done above the checkpoint "
                f"{self.checkpoint.position}: forgot the lowest {self.checkpoint.forgotten - forgotten}, their "
                f"events are sent again if they come again (another forwarder named {self.options.name}?)")

    async def _ack(self, msg: Msg, position: int) -> None:
        await msg.ack()
        if self.checkpoint is not None:
            self.checkpoint.mark.record(position)

    async def _handle(self, messages: list[Msg]) -> None:
        selected: list[tuple[Msg, LogStatement]] = []
        positions: set[int] = set()  # of the log events selected in this batch
        checks = await self.log_check.check([(msg.headers or {}, msg.data or b"") for msg in messages])
        genuine = [int(checked.headers[POSITION_HEADER]) for checked in checks
                   if checked.refusal is None and checked.headers is not None]
        if self.checkpoint is not None and genuine:
            self.checkpoint.start_at(min(genuine))
        for msg, checked in zip(messages, checks):
            if checked.refusal is not None:
                # Never sent, neither it nor the log's event in its place: its
                # position stays not done, so the log's event goes once, with
                # its own message or, when the stream will not deliver that,
                # read from the log (connectors.forward.logfill).  A forged
                # position may also be one not yet in the log.
                self.stats.refused += 1
                copy = (checked.headers is not None and self.checkpoint is not None
                        and is_replay(int(checked.headers[POSITION_HEADER]), delivery_count(msg), self.checkpoint.mark))
                self.stats.replayed += copy  # a copy, altered or not, of an event already forwarded
                say(f"ALERT refused a message that is not the log's event (position "
                    f"{(msg.headers or {}).get(POSITION_HEADER, '?')}, {checked.refusal}); not sent"
                    + ("; its position was already forwarded" if copy else ""))
                await msg.term()  # never delivered again
                continue
            assert checked.headers is not None and checked.payload is not None  # the log's, as it was not refused
            try:
                event = event_from_message(checked.headers, checked.payload)
            except ValueError as exc:
                await self._park(msg, unreadable_event(msg), None, f"unreadable event: {exc}")
                continue
            if self.checkpoint is not None and is_replay(event.position, delivery_count(msg), self.checkpoint.mark):
                await msg.ack()
                self.stats.replayed += 1
                say(f"ALERT a second copy of position {event.position}, already forwarded: not sent again")
                continue
            if event.event_type != STATEMENT_EVENT or not self.selection.matches(event.tenant, event.statement):
                await self._ack(msg, event.position)
                self.stats.skipped += 1
                continue
            if event.position in positions:  # a second message for the same log event (a replay)
                await msg.ack()
                continue
            positions.add(event.position)
            selected.append((msg, event))
        if selected:
            await self._deliver(selected)

    async def _deliver(self, items: list[tuple[Msg, LogStatement]]) -> None:
        refs = {f"position {event.position}": (msg, event) for msg, event in items}
        try:
            opened = await self._opened([event for _, event in items])
        except CannotOpen:
            for msg, _ in items:  # delivered again once the forwarder runs with the key
                await msg.nak()
            raise
        batch = [Outgoing(outgoing_statement(statement), ref) for ref, statement in zip(refs, opened)]
        async with kept_in_progress([msg for msg, _ in items]):
            outcome = await self._send_through_outages(batch, items)
            if outcome is None:
                return
        rejected = {rejection.ref: rejection for rejection in outcome.rejected}
        for (ref, (msg, event)), statement in zip(refs.items(), opened):
            rejection = rejected.get(ref)
            if rejection is not None:
                hint = refusal_hint(rejection.status, statement)
                await self._park(msg, event, rejection.status,
                                 f"{hint}; the target said: {rejection.reason}" if hint else rejection.reason)
            else:
                await self._ack(msg, event.position)
                self.stats.forwarded += 1
                self.stats.from_log += isinstance(msg, LogDelivery)

    async def _opened(self, events: list[LogStatement]) -> list[dict[str, Any]]:
        """The statements as GET /xapi/statements returns them (their sealed
        identities opened), one call of the opener per tenant."""
        by_tenant: dict[str, list[int]] = {}
        for index, event in enumerate(events):
            by_tenant.setdefault(event.tenant, []).append(index)
        statements = [event.statement for event in events]
        for tenant, indexes in by_tenant.items():
            stored = [events[i].payload for i in indexes]
            for index, payload, before in zip(indexes, await self.open_stored(tenant, stored), stored):
                if payload is not before:  # nothing sealed: the payload itself comes back
                    statements[index] = msgspec.json.decode(payload)
        return statements

    async def _send_through_outages(
        self, batch: list[Outgoing], items: list[tuple[Msg, LogStatement]]
    ) -> BatchOutcome | None:
        """The target's answer about every statement of ``batch``; None when
        the statements were dealt with otherwise (one by one, retried later,
        parked, or handed back because the forwarder is stopping)."""
        wait = self.options.wait_initial
        while True:
            try:
                return await self.sink.send(batch)
            except SinkFatal:
                for msg, _ in items:
                    await msg.nak()
                raise
            except SinkUnavailable as exc:
                if failure_action(exc.status, 0, self.options.max_deliveries) is Action.WAIT:
                    self.stats.waits += 1
                    say(f"target unavailable ({exc}); holding {len(items)} statement(s), next try in {wait:.1f}s")
                    await self._sleep(wait)
                    wait = min(wait * 2, self.options.wait_cap)
                    if self._stop.is_set():
                        for msg, _ in items:
                            await msg.nak()
                        return None
                    continue
                if len(items) > 1:  # find the statements the target fails on
                    for item in items:
                        await self._deliver([item])
                    return None
                await self._failed(items[0], exc.status, str(exc))
                return None

    async def _failed(self, item: tuple[Msg, LogStatement], status: int | None, error: str) -> None:
        msg, event = item
        deliveries = msg.metadata.num_delivered or 1
        if failure_action(status, deliveries, self.options.max_deliveries) is Action.RETRY:
            self.stats.retried += 1
            say(f"statement {event.statement_id} (position {event.position}) failed, delivery {deliveries} of "
                f"{self.options.max_deliveries}: {error}")
            await msg.nak(delay=self.options.retry_delay)
            return
        await self._park(msg, event, status, error)

    async def _park(self, msg: Msg, event: LogStatement, status: int | None, error: str) -> None:
        """Dead-letter stream first (awaiting its PubAck), then ack the event."""
        headers = dead_letter_headers(
            event, name=self.options.name, status=status, error=error,
            deliveries=msg.metadata.num_delivered or 1, target=self.sink.endpoint,
            parked_at=datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
        )
        await self._js.publish(dead_letter_subject(self.options.name), event.payload, stream=DEAD_LETTER_STREAM,
                               headers=headers)
        await self._ack(msg, event.position)
        self.stats.parked += 1
        say(f"parked statement {event.statement_id} (position {event.position}) in {DEAD_LETTER_STREAM}: "
            f"HTTP {status or '-'} {headers['Lrs-Forward-Error']}")

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

