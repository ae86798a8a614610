"""JetStream publishing behind a small interface.

``Bus`` owns one NATS connection that reconnects forever.  It makes sure the
``LRS_EVENTS`` stream exists as ``schemas/nats/LRS_EVENTS.json`` describes it,
publishes batches of messages pipelined (every message is written before any
acknowledgement is awaited, then all acknowledgements are awaited together),
and reports the position of the stream's last message.

The definitions under ``schemas/nats/`` are kept in the server's own JSON form
(durations in nanoseconds), so ``nats stream add --config`` accepts them too.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from dataclasses import dataclass
from importlib.resources.abc import Traversable
from typing import Awaitable, Callable, Sequence

import nats.errors
import nats.js.errors
import structlog
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext, api

from lrs.config import nats_servers
from lrs.nats.closing import close_client
from lrs.contracts import NATS_DEFINITIONS
from lrs.event_contract import HEADERS, POSITION_HEADER, OutgoingMessage
from lrs.nats.access import connect_options
from lrs.url_redaction import redact_url
from lrs.nats.event_frames import EventBatch

STREAM_NAME = "LRS_EVENTS"
STREAM_SCHEMA = NATS_DEFINITIONS / f"{STREAM_NAME}.json"
CONSUMER_SCHEMAS_DIR = NATS_DEFINITIONS / "consumers"
DEFAULT_MAX_PAYLOAD = 1024 * 1024  # nats-server's default max_payload

# Errors a caller should treat as "NATS is unavailable right now, retry later".
BUS_ERRORS: tuple[type[BaseException], ...] = (nats.errors.Error, OSError, asyncio.TimeoutError)

# A JetStream API request nobody answered: no reply in time, no responder,
# or JetStream not ready on the member asked.  Asked again where patience allows.
UNANSWERED: tuple[type[BaseException], ...] = (
    nats.errors.TimeoutError,
    nats.errors.NoRespondersError,
    nats.js.errors.ServiceUnavailableError,
)
UNANSWERED_RETRY_S = 0.5

log = structlog.get_logger("lrs.nats.bus")

# The header block of an HPUB frame, exactly as nats-py writes it: keys and
# values stripped, CR and LF in values replaced by spaces.  The keys the
# relay sends are known to be valid as they are.
_HEADER_LINE = b"NATS/1.0\r\n"
_HEADER_TEXT = _HEADER_LINE.decode()
_HEADER_KEY = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")

_CHECKED_KEYS = frozenset(HEADERS)


class PublishError(nats.errors.Error):
    """A batch was not fully acknowledged by the stream; publish it again."""


@dataclass(frozen=True, slots=True)
class PublishResult:
    stored: int  # messages the stream stored now
    duplicates: int  # messages the stream dropped as already seen (same Nats-Msg-Id)


def hpub_frame(message: OutgoingMessage) -> bytes:
    """The protocol frame ``publish(subject, data, headers=headers)`` sends,
    byte for byte (no reply subject)."""
    lines = [_HEADER_TEXT]
    for key, value in message.headers.items():
        if key not in _CHECKED_KEYS:
            key = key.strip()
            if not key:
                continue
            if not _HEADER_KEY.fullmatch(key):
                raise nats.errors.BadHeaderError(key)
        value = value.strip()
        if "\r" in value or "\n" in value:  # str.translate costs more than the rest of the frame
            value = value.replace("\r", " ").replace("\n", " ")
        lines.append(f"{key}: {value}\r\n")
    lines.append("\r\n")
    header = "".join(lines).encode()  # one encode for the block, not one per line
    return b"".join((
        b"HPUB %s  %d %d\r\n" % (message.subject.encode(), len(header), len(header) + len(message.data)),
        header, message.data, b"\r\n",
    ))


def load_stream_config(path: Traversable = STREAM_SCHEMA, *, replicas: int | None = None) -> api.StreamConfig:
    """The stream definition; ``replicas`` (``LRS_NATS_STREAM_REPLICAS``)
    replaces its ``num_replicas``."""
    config = api.StreamConfig.from_response(json.loads(path.read_text()))
    return config if replicas is None else config.evolve(num_replicas=replicas)


def load_consumer_config(template: str = "projections", **overrides: object) -> api.ConsumerConfig:
    """A consumer definition from ``schemas/nats/consumers/<template>.json``.

    ``overrides`` replace fields, e.g. ``durable_name="competency"``.
    """
    raw = json.loads((CONSUMER_SCHEMAS_DIR / f"{template}.json").read_text())
    return api.ConsumerConfig.from_response(raw).evolve(**overrides)


def _differences(wanted: api.StreamConfig, current: api.StreamConfig, keys: Sequence[str]) -> list[str]:
    want, have = wanted.as_dict(), current.as_dict()
    return [key for key in keys if want.get(key) != have.get(key)]


class Bus:
    """One NATS connection with JetStream, reconnecting forever."""

    def __init__(
        self,
        url: str,
        *,
        stream_config: api.StreamConfig | None = None,
        ack_timeout: float = 10.0,
        reconnect_wait: float = 1.0,
        name: str = "lrs",
    ) -> None:
        self.url = url
        self.stream_config = stream_config or load_stream_config()
        self.stream_name: str = self.stream_config.name or STREAM_NAME
        self._ack_timeout = ack_timeout
        self._reconnect_wait = reconnect_wait
        self._client_name = name
        self._nc: NatsClient | None = None
        self._js: JetStreamContext | None = None
        self._connect_lock = asyncio.Lock()
        self._connected = asyncio.Event()
        self._generation = 0
        self._last_error: str | None = None
        # The level of the bus.error lines: a one-shot command that reports an
        # unreachable server itself (lrs relay --until-caught-up) lowers it.
        self.error_level = "warning"
        # The stream's last sequence as of our last fully verified publish; None
        # when unknown (start, reconnect, or a batch that did not add up).
        self._known_last_seq: int | None = None
        self._disconnected_since: float | None = None  # time.monotonic()
        self._replacing: asyncio.Task[None] | None = None

    # -- connection ---------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._nc is not None and self._nc.is_connected

    @property
    def last_error(self) -> str | None:
        """The last connection error since the last (re)connection."""
        return self._last_error

    @property
    def max_payload(self) -> int:
        """The server's limit on one message (headers and data), as it
        announced it; NATS's default (1 MiB) while not connected."""
        nc = self._nc
        return nc.max_payload if nc is not None and nc.max_payload else DEFAULT_MAX_PAYLOAD

    @property
    def generation(self) -> int:
        """Increases on every (re)connection: a new server may have lost data."""
        return self._generation

    async def connect(self) -> None:
        """Connect, retrying forever; returns at once when already connected."""
        async with self._connect_lock:
            if self._nc is not None and not self._nc.is_closed:
                return
            nc = NatsClient()
            try:
                await self._connect_client(nc)
            except BaseException:
                with contextlib.suppress(Exception):
                    await close_client(nc)  # cancelled while still trying: stop its tasks
                raise
            self._nc = nc
            # Enough pending acknowledgements for a few large batches in flight.
            self._js = nc.jetstream(timeout=self._ack_timeout, publish_async_max_pending=65536)
            self._on_connected()

    async def _connect_client(self, nc: NatsClient) -> None:
        await nc.connect(
            servers=nats_servers(self.url),
            name=self._client_name,
            allow_reconnect=True,
            max_reconnect_attempts=-1,  # also retries the first connection forever
            reconnect_time_wait=self._reconnect_wait,
            connect_timeout=2,
            ping_interval=5,
            max_outstanding_pings=2,
            error_cb=self._on_error,
            disconnected_cb=self._on_disconnected,
            reconnected_cb=self._on_reconnected,
            # Subjects are built by event_subject(), which escapes what a
            # token may not contain; skipping the per-publish check is cheaper.
            skip_subject_validation=True,
            **connect_options(url=self.url),
        )

    async def wait_connected(self, timeout: float | None = None) -> bool:
        try:
            await asyncio.wait_for(self._connected.wait(), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    async def replace_stalled_client(self, after_s: float) -> bool:
        """Replace the client with a new one when it has been disconnected for
        ``after_s`` seconds or more; True if it did.

        nats-py's reconnect loop ends on any error outside the few it expects
        (a RuntimeError from a transport closed under it, an exception raised
        in a callback), and its client then stays disconnected for good.  A new
        client starts over from the server list."""
        since = self._disconnected_since
        if self._nc is None or self.connected or since is None or time.monotonic() - since < after_s:
            return False
        log.warning("bus.client_replaced", url=redact_url(self.url), disconnected_s=round(time.monotonic() - since, 1))
        old, self._nc, self._js = self._nc, None, None
        self._disconnected_since = time.monotonic()
        await close_client(old, 2)  # its close fails on the connection lost under it: stop its tasks all the same
        if self._replacing is None or self._replacing.done():
            self._replacing = asyncio.create_task(self.connect(), name="bus-replace-client")
        return True

    async def close(self) -> None:
        if self._replacing is not None:
            self._replacing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._replacing
            self._replacing = None
        nc, self._nc, self._js = self._nc, None, None
        self._connected.clear()
        if nc is not None and not nc.is_closed:
            error = await close_client(nc)
            if error is not None:  # closing a connection that is already gone
                log.debug("bus.close_failed", error=repr(error))

    def _on_connected(self) -> None:
        self._disconnected_since = None
        self._generation += 1
        self._known_last_seq = None
        self._last_error = None
        self._connected.set()
        log.info("bus.connected", url=redact_url(self.url), generation=self._generation)

    async def _on_reconnected(self) -> None:
        self._on_connected()

    async def _on_disconnected(self) -> None:
        if self._connected.is_set():
            log.warning("bus.disconnected", url=redact_url(self.url))
        self._connected.clear()
        if self._disconnected_since is None:
            self._disconnected_since = time.monotonic()

    async def _on_error(self, exc: Exception) -> None:
        text = repr(exc)
        if text != self._last_error:  # one line per kind of failure, not one per retry
            getattr(log, self.error_level)("bus.error", url=redact_url(self.url), error=text)
            self._last_error = text

    def _jetstream(self) -> JetStreamContext:
        if self._js is None:
            raise nats.errors.ConnectionClosedError
        return self._js

    # -- stream -------------------------------------------------------------

    async def ensure_stream(self, *, update: bool = True, patience_s: float = 0.0) -> api.StreamInfo:
        """Create the stream, or update it when it differs from its definition.

        With ``update=False`` (the relay: its NATS user may create the stream
        but not change it, lrs.nats.permissions) a stream that differs is left
        as it is and the difference logged as an alert, for an operator to
        apply with an admin user.

        A JetStream API request that gets no answer (a cluster whose stream
        group is electing a leader, or whose members are busy, drops it) is
        asked again until ``patience_s`` has passed; every step is safe to
        repeat (an add or update with the same definition changes nothing)."""
        deadline = time.monotonic() + patience_s
        while True:
            try:
                return await self._ensure_stream_once(update)
            except UNANSWERED as exc:
                if time.monotonic() >= deadline:
                    raise
                log.warning("bus.stream_request_unanswered", stream=self.stream_name, error=repr(exc),
                            hint="asking again: a clustered stream may be electing its leader")
                await asyncio.sleep(UNANSWERED_RETRY_S)

    async def _ensure_stream_once(self, update: bool) -> api.StreamInfo:
        js = self._jetstream()
        wanted = self.stream_config
        try:
            info = await js.stream_info(self.stream_name)
        except nats.js.errors.NotFoundError:
            info = await js.add_stream(wanted)
            log.info("bus.stream_created", stream=self.stream_name)
            return info
        keys = [key for key in wanted.as_dict() if key != "name"]
        changed = _differences(wanted, info.config, keys)
        if changed and not update:
            log.warning("bus.stream_differs", stream=self.stream_name, fields=changed, alert=True,
                        hint="apply schemas/nats/LRS_EVENTS.json with an admin user (docs/trust.md)")
        elif changed:
            info = await js.update_stream(wanted)
            log.info("bus.stream_updated", stream=self.stream_name, fields=changed)
        return info

    async def ensure_consumer(self, config: api.ConsumerConfig) -> api.ConsumerInfo:
        return await self._jetstream().add_consumer(self.stream_name, config)

    async def last_position(self) -> int | None:
        """``Lrs-Position`` of the stream's last message; 0 for a stream that
        never held one (new, or wiped); None when its last message is gone:
        acknowledged by every consumer that selects it (interest retention:
        an empty stream is the normal state of caught-up consumers), selected
        by none, or past ``max_age``.  It held it, so nothing is missing, but
        it cannot say up to where."""
        js = self._jetstream()
        info = await js.stream_info(self.stream_name)
        self._known_last_seq = info.state.last_seq
        if info.state.last_seq == 0:
            return 0
        if info.state.messages == 0:
            return None
        try:
            msg = await js.get_msg(self.stream_name, seq=info.state.last_seq)
        except nats.js.errors.NotFoundError:
            # Removed between the two calls, or while earlier messages stay
            # for a consumer that lags (one that does not select the last).
            return None
        value = (msg.headers or {}).get(POSITION_HEADER)
        if value is None or not (value.isascii() and value.isdigit()):
            # Not the relay's message.  Raising here stopped the relay for good:
            # every resync read the same last message and failed again.
            log.error("bus.last_message_without_position", stream=self.stream_name, seq=info.state.last_seq,
                      position=None if value is None else value[:30], alert=True)
            return 0
        return int(value)

    # -- publishing ---------------------------------------------------------

    async def publish_batch(self, messages: Sequence[OutgoingMessage]) -> PublishResult:
        """Publish all messages in order and make sure the stream stored each.

        Fast path: when the stream's last sequence is known, every message but
        the last goes out as a plain publish and only the last one asks for an
        acknowledgement.  One connection's messages reach the stream in order,
        so if that acknowledgement is not a duplicate and its sequence is the
        known last sequence plus the batch size, the stream stored every
        message of the batch.  Anything else (a refusal, a duplicate, another
        publisher, a lost message) falls back to the acknowledged path below,
        where the stream's Nats-Msg-Id window drops what it already has.
        """
        if len(messages) > 1 and self._known_last_seq is not None:
            result = await self._publish_verified_by_last_ack(messages)
            if result is not None:
                return result
        return await self._publish_each_acked(messages)

    async def _publish_verified_by_last_ack(self, messages: Sequence[OutgoingMessage]) -> PublishResult | None:
        js = self._jetstream()
        nc = self._nc
        assert nc is not None and self._known_last_seq is not None
        expected = self._known_last_seq + len(messages)
        self._known_last_seq = None  # unknown until verified
        await _publish_plain(nc, messages.head(len(messages) - 1) if isinstance(messages, EventBatch) else messages[:-1])
        last = messages[-1]
        future = await js.publish_async(last.subject, last.data, headers=dict(last.headers), wait_stall=None)
        try:
            ack = await asyncio.wait_for(future, self._ack_timeout)
        except nats.errors.Error:
            return None
        if ack.stream == self.stream_name and not ack.duplicate and ack.seq == expected:
            self._known_last_seq = ack.seq
            return PublishResult(stored=len(messages), duplicates=0)
        log.info("bus.batch_unverified", expected_seq=expected, ack_seq=ack.seq, duplicate=bool(ack.duplicate))
        return None

    async def _publish_each_acked(self, messages: Sequence[OutgoingMessage]) -> PublishResult:
        """Publish all messages in order, then wait for every acknowledgement.

        Raises ``PublishError`` (or another of ``BUS_ERRORS``) unless every
        message was acknowledged by the stream; a caller then publishes the
        batch again and the stream drops what it already has by Nats-Msg-Id.
        """
        js = self._jetstream()
        futures: list[asyncio.Future[api.PubAck]] = []
        try:
            for message in messages:
                futures.append(
                    await js.publish_async(
                        message.subject,
                        message.data,
                        headers=dict(message.headers),
                        # No stall timeout: with one, every call spawns a task
                        # and a loop turn. The pending table is sized above the
                        # batch, and unfinished futures are cancelled below.
                        wait_stall=None,
                    )
                )
            if futures:
                _, pending = await asyncio.wait(futures, timeout=self._ack_timeout)
                if pending:
                    raise PublishError(
                        f"{len(pending)} of {len(messages)} acknowledgements missing after {self._ack_timeout}s"
                    )
        finally:
            for future in futures:
                if not future.done():
                    future.cancel()  # frees its slot in the client's pending-ack table
        duplicates = 0
        for future in futures:
            error = future.exception()
            if error is not None:
                raise PublishError(f"stream refused a message: {error!r}") from error
            ack = future.result()
            if ack.stream != self.stream_name:
                raise PublishError(f"message stored in stream {ack.stream!r}, not {self.stream_name!r}")
            duplicates += bool(ack.duplicate)
        if futures:
            last = futures[-1].result()
            # A duplicate's sequence is the original's, not the stream's last.
            self._known_last_seq = last.seq if not last.duplicate else None
        return PublishResult(stored=len(futures) - duplicates, duplicates=duplicates)


def frame_writer(nc: NatsClient) -> Callable[[bytes], Awaitable[None]] | None:
    """The client's write buffer, for protocol frames built by the caller,
    while the client would write them as they are (connected, not draining);
    None otherwise: then the caller goes through the client's own calls,
    which raise as usual."""
    send = getattr(nc, "_send_command", None)
    if send is None or not nc.is_connected or nc.is_draining_pubs:
        return None
    return send


async def _publish_plain(nc: NatsClient, messages: Sequence[OutgoingMessage]) -> None:
    """Publish without acknowledgements, in order.

    The frames of the whole run are built here and handed to the client's
    write buffer as one command (one call instead of one per message, which
    dominated the relay's CPU); anything the client would refuse (closed,
    reconnecting, a payload above the server's limit) goes through ``publish``
    one by one so that it raises as usual.
    """
    send = frame_writer(nc)
    if isinstance(messages, EventBatch):  # the relay's: frames built from the log records
        if send is not None and messages.max_data_length() <= nc.max_payload:
            if len(messages):
                await send(messages.wire())
            return
        messages = messages[:]
    if send is None or any(len(m.data) > nc.max_payload for m in messages):
        for message in messages:
            await nc.publish(message.subject, message.data, headers=dict(message.headers))
        return
    if messages:
        await send(b"".join([hpub_frame(m) for m in messages]))
