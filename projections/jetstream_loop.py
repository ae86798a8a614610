"""Delivery from JetStream: a durable pull consumer ``projection-<name>`` on
the LRS_EVENTS stream, whose messages are acknowledged only after the batch
they came in has committed (projections/applying.py)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Awaitable, Callable

import nats
import nats.errors
import nats.js.errors
import structlog
from nats.aio.msg import Msg

from lrs import projection_health
from lrs.config import nats_servers
from lrs.nats.access import connect_options
from lrs.nats.bus import STREAM_NAME, load_consumer_config
from lrs.nats.closing import close_client
from lrs.event_contract import HEADER_LAYOUTS
from lrs.nats.headers import layout_parse, use_fast_header_parse
from lrs.nats.permissions import projection_consumer
from lrs.nats.pull import PullConsumer, PullRefused
from projections.applying import TRANSIENT_ERRORS, BatchApplier, BatchOutcome
from projections.events import LogEvent, event_from_message
from projections.leader import WhileLeading, leading, sleep_or_stop

__all__ = ["Pulling", "consume", "relay_consumer"]

log = structlog.get_logger("lrs.projections")

# The relay's header blocks, parsed by their layout (lrs.nats.headers.layout_parse).
_RELAYED_HEADERS = layout_parse(*HEADER_LAYOUTS)

LOG_LOOK_INTERVAL = 1.0  # seconds between looks at the log while the stream has nothing to fetch


@dataclass(frozen=True, slots=True)
class Pulling:
    """How :func:`consume` pulls (see ProjectionRunner.run)."""

    batch_size: int
    fetch_timeout: float
    retry_delay: float
    on_batch: Callable[[BatchOutcome], None] | None
    batch_interval: float
    stalled_after: float = 15.0
    # Behind (each fetch came back full), the next fetch asks for twice as
    # many, up to this: a transaction's fixed cost (a dozen statements, a
    # commit) is shared by more events, and a learner that several of them
    # concern is folded and written once (bench/live_apply_profile.py).
    max_batch_size: int = 0  # 0: batch_size


class ClientStalled(Exception):
    """The NATS client has been disconnected for ``stalled_after`` seconds:
    nats-py's reconnect loop ends for good on errors it does not expect, so
    the runner starts over with a new client."""


async def consume(
    applier: BatchApplier,
    nats_url: str,
    stop: asyncio.Event,
    pulling: Pulling,
    while_leading: WhileLeading | None = None,
) -> None:
    """Consume until ``stop`` is set; one process at a time (the others wait),
    which runs ``while_leading`` as long as it leads."""
    name = applier.name

    def waiting() -> None:
        log.info("projection.waiting_for_lock", projection=name)

    async with leading(applier.pool, f"projection:{name}", stop, retry_every=1.0, waiting=waiting) as lock_conn:
        if lock_conn is None:
            return
        stop_leading = while_leading(lock_conn) if while_leading is not None else None
        try:
            while True:
                try:
                    await _connected(applier, nats_url, stop, pulling)
                    break
                except ClientStalled:
                    log.warning("projection.nats_client_replaced", projection=name, after_s=pulling.stalled_after)
        finally:
            if stop_leading is not None:
                await stop_leading()


async def _connected(applier: BatchApplier, nats_url: str, stop: asyncio.Event, pulling: Pulling) -> None:
    nc = await nats.connect(
        servers=nats_servers(nats_url), name=f"lrs-projection-{applier.name}", allow_reconnect=True,
        max_reconnect_attempts=-1, reconnect_time_wait=1.0, connect_timeout=2, **connect_options(url=nats_url),
    )
    use_fast_header_parse(nc)  # every message carries the relay's six headers
    try:
        js = nc.jetstream()
        durable = projection_consumer(applier.name)
        await _ensure_consumer(applier.name, js, durable, stop)
        if stop.is_set():
            return
        pull = relay_consumer(nc, durable)
        await pull.start()
        try:
            await _pull_batches(applier, pull, js, durable, stop, pulling)
        finally:
            await _bounded(pull.close())
    finally:
        # A client that stopped reconnecting may never finish closing: its
        # subscriptions' tasks are stopped all the same (lrs.nats.closing).
        error = await close_client(nc, 5.0)
        if error is not None:
            log.warning("projection.nats_close_failed", error=repr(error))


def relay_consumer(nc: nats.NATS, durable: str) -> PullConsumer:
    """The pull consumer of the relay's messages, which parses their header
    blocks by the relay's layouts."""
    return PullConsumer(nc, STREAM_NAME, durable, parse_headers=_RELAYED_HEADERS)


async def _pull_batches(
    applier: BatchApplier,
    pull: PullConsumer,
    js: nats.js.JetStreamContext,
    durable: str,
    stop: asyncio.Event,
    pulling: Pulling,
) -> None:
    name = applier.name
    batch_size, retry_delay = pulling.batch_size, pulling.retry_delay
    largest = max(batch_size, pulling.max_batch_size)
    asking = batch_size
    loop = asyncio.get_running_loop()
    next_fetch = 0.0
    next_log_look = 0.0
    disconnected_since: float | None = None
    while not stop.is_set():
        if pull.connected:
            disconnected_since = None
        elif disconnected_since is None:
            disconnected_since = loop.time()
        elif loop.time() - disconnected_since >= pulling.stalled_after:
            raise ClientStalled
        pause = next_fetch - loop.time()
        if pause > 0:
            await sleep_or_stop(stop, pause)
            if stop.is_set():
                break
        try:
            messages = await pull.fetch(asking, timeout=pulling.fetch_timeout)
        except PullRefused as exc:  # the consumer is gone, or JetStream is not there yet
            log.warning("projection.fetch_refused", projection=name, error=str(exc))
            await sleep_or_stop(stop, retry_delay)
            await _ensure_consumer(name, js, durable, stop)
            continue
        except (nats.errors.Error, OSError) as exc:
            log.warning("projection.fetch_failed", projection=name, error=repr(exc))
            await sleep_or_stop(stop, retry_delay)
            continue
        if not messages:
            if loop.time() >= next_log_look:
                outcome = await _from_log(applier)
                next_log_look = 0.0 if outcome is not None and outcome.applied else loop.time() + LOG_LOOK_INTERVAL
                if outcome is not None and outcome.applied and pulling.on_batch is not None:
                    pulling.on_batch(outcome)
            continue
        outcome = await _handle(applier, pull, messages, retry_delay)
        next_fetch = loop.time() + pulling.batch_interval if len(messages) < batch_size else 0.0
        asking = next_batch_size(asking, len(messages), batch_size, largest)
        if outcome is None:
            await sleep_or_stop(stop, retry_delay)
        elif pulling.on_batch is not None:
            pulling.on_batch(outcome)


async def _from_log(applier: BatchApplier) -> BatchOutcome | None:
    """With nothing to fetch, the positions the relay published beyond the
    checkpoint are no longer on the stream for this consumer (the stream
    keeps a message only for the consumers it has when the message comes,
    until they acknowledged it, at most max_age): read from the log, a
    bounded stretch (``max_gap_fill``) at a time."""
    try:
        if not await applier.behind_relay():
            return None
        return await applier.apply_batch([], fill_to=await applier.relayed_position())
    except TRANSIENT_ERRORS as exc:
        log.warning("projection.log_fill_failed", projection=applier.name, error=repr(exc))
        return None


def next_batch_size(asked: int, got: int, batch_size: int, largest: int) -> int:
    """How many messages to fetch next: twice as many (up to ``largest``)
    after a fetch that came back full, ``batch_size`` after one that did not."""
    return min(asked * 2, largest) if got >= asked else batch_size


async def _ensure_consumer(name: str, js: nats.js.JetStreamContext, durable: str, stop: asyncio.Event) -> None:
    config = load_consumer_config(durable_name=durable)
    while not stop.is_set():
        try:
            await js.add_consumer(STREAM_NAME, config)
            return
        except nats.js.errors.NotFoundError:
            log.info("projection.waiting_for_stream", projection=name, stream=STREAM_NAME)
        except (nats.errors.Error, OSError) as exc:
            log.warning("projection.consumer_failed", projection=name, error=repr(exc))
        await sleep_or_stop(stop, 1.0)


async def _handle(
    applier: BatchApplier, pull: PullConsumer, messages: list[Msg], retry_delay: float
) -> BatchOutcome | None:
    name = applier.name
    events: list[tuple[Msg, LogEvent]] = []
    for msg in messages:
        try:
            events.append((msg, event_from_message(msg)))
        except (KeyError, ValueError):
            projection_health.note_refused(name, "unreadable")
            log.error("projection.foreign_message", projection=name, subject=msg.subject, alert=True)
            await msg.term()
    try:
        outcome = await applier.apply_batch([event for _, event in events])
    except TRANSIENT_ERRORS as exc:
        log.warning("projection.batch_failed", projection=name, error=repr(exc))
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


async def _bounded(closing: Awaitable[None], seconds: float = 5.0) -> None:
    try:
        await asyncio.wait_for(closing, seconds)
    except (asyncio.TimeoutError, nats.errors.Error, OSError) as exc:
        log.warning("projection.nats_close_failed", error=repr(exc))
