"""Batches of messages from a durable JetStream pull consumer.

The pull protocol, spoken over one plain subscription: a request to
``$JS.API.CONSUMER.MSG.NEXT.<stream>.<consumer>`` asks for up to ``batch``
messages, delivered to this client's inbox; the server ends a request it
cannot fill with a status message (404 no messages, 408 expired).

nats-py's ``PullSubscription.fetch`` does the same but waits for each
message on its own (an ``asyncio.wait_for`` per message), which measured
about 70 µs of CPU per message with an ack each, against about 26 µs here:
messages are appended to a buffer as they arrive and a fetch takes what
the buffer holds.

The client hands this consumer's messages straight to it: nats-py's parser
calls ``Client._process_msg`` for every message, which parses the headers in
a coroutine of their own, builds the message, puts it on the subscription's
queue and wakes the subscription's task, which then calls the callback (a
coroutine too).  A consumer that reads thousands of messages a second spends
a fifth of its reading there (bench/runner_read.py), so :meth:`start` wraps
that method on its client: a message of this consumer's inbox is parsed
(plain headers by lrs.nats.headers, or by the caller's ``parse_headers``: the
runner's knows the relay's layout), built and buffered there and then, in
the order the parser meets it, as the callback would have; every other
message goes on through nats-py.  tests/*/nats/test_private_api.py guard the
method's shape; pyproject pins the nats-py range.

A fetch first asks for what is there without waiting (``no_wait``); only
when nothing is, it leaves a request open for ``timeout`` seconds and
returns with the first messages.  Messages the open request delivers later
stay in the buffer for the next fetch, so none is dropped; a message that
is never acknowledged is redelivered by the server after its ack wait, as
with any JetStream consumer.
"""

from __future__ import annotations

import asyncio
import json
from typing import Awaitable, Callable, Sequence

import nats.errors
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from lrs.nats.bus import frame_writer
from lrs.nats.headers import parse_plain_headers

__all__ = ["PullConsumer", "PullRefused"]

STATUS_HEADER = "Status"
DESCRIPTION_HEADER = "Description"
# 404 (nothing there) and 408 (the request expired) end a request as usual;
# 100 (heartbeat, flow control) ends nothing.  Any other status (409 consumer
# deleted, 503 no responders, 400...) ends it with a refusal.
_USUAL_ENDS = {"404", "408"}


class PullRefused(nats.errors.Error):
    """The server refused a pull request (the consumer is gone, JetStream is
    unavailable...): the caller should wait and make sure of its consumer."""

    def __init__(self, status: str, description: str) -> None:
        super().__init__(f"pull request refused: {status} {description}".strip())
        self.status = status
        self.description = description


class PullConsumer:
    def __init__(
        self,
        nc: NatsClient,
        stream: str,
        consumer: str,
        parse_headers: Callable[[bytes], dict[str, str] | None] = parse_plain_headers,
    ) -> None:
        """``parse_headers``: a header block of this consumer's messages as
        nats-py would parse it, or None to leave the block to nats-py (a
        status, odd bytes); lrs.nats.headers.layout_parse makes one."""
        self._nc = nc
        self._parse_headers = parse_headers
        self._subject = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}"
        self._inbox = ""
        self._sub: Subscription | None = None
        self._buffer: list[Msg] = []
        self._wanted = 0
        self._ready = asyncio.Event()  # the buffer holds what is wanted, or a request ended
        self._refused: PullRefused | None = None
        self._passed_on: Callable[..., Awaitable[None]] | None = None  # the client's own _process_msg, while wrapped
        self._taking: Callable[..., Awaitable[None]] | None = None  # the wrapper put in its place

    async def start(self) -> None:
        self._inbox = self._nc.new_inbox()
        self._sub = await self._nc.subscribe(self._inbox, cb=self._received)
        self._take_messages_directly(self._sub)

    def _take_messages_directly(self, sub: Subscription) -> None:
        """Wrap the client's ``_process_msg`` so that the messages of ``sub``
        go to :meth:`_received` as the parser meets them (module docstring).
        Nothing changes with a nats-py without that method."""
        nc = self._nc
        passed_on = getattr(nc, "_process_msg", None)
        if passed_on is None or not hasattr(NatsClient, "_process_msg"):
            return  # pragma: no cover - a nats-py that dispatches otherwise
        sid, stats, build, process_headers = sub._id, nc.stats, nc._build_message, nc._process_headers
        received, parse = self._received, self._parse_headers

        async def process_msg(msg_sid: int, subject: bytes, reply: bytes, data: bytes, headers: bytes | None) -> None:
            if msg_sid != sid:
                return await passed_on(msg_sid, subject, reply, data, headers)
            stats["in_msgs"] += 1
            stats["in_bytes"] += len(data)
            hdr = (parse(headers) or None if headers else None)
            if hdr is None and headers:
                hdr = await process_headers(headers)  # a status (the end of a request, a heartbeat), odd bytes
            await received(build(msg_sid, subject, reply, data, hdr))

        nc._process_msg = process_msg  # type: ignore[method-assign]
        self._passed_on, self._taking = passed_on, process_msg

    def _give_messages_back(self) -> None:
        """Undo :meth:`_take_messages_directly`, unless another consumer of
        the client wrapped it since (its wrapper passes this one's sid on
        to ours, which passes it on to nats-py: nothing comes for it once
        it unsubscribed)."""
        if self._passed_on is not None and self._nc.__dict__.get("_process_msg") is self._taking:
            self._nc._process_msg = self._passed_on  # type: ignore[method-assign]
        self._passed_on = self._taking = None

    async def close(self) -> None:
        """Stop receiving; messages received but not fetched are given back
        (nak) so that the server redelivers them now, not after their ack wait."""
        if self._sub is not None:
            await self._sub.unsubscribe()
            self._sub = None
        self._give_messages_back()
        buffered, self._buffer = self._buffer, []
        for msg in buffered:
            try:
                await msg.nak()
            except nats.errors.Error:
                break  # the connection is gone: the ack wait gives them back

    async def ack_all(self, messages: Sequence[Msg]) -> None:
        """Acknowledge ``messages``, in order.

        The ack frames of all but the last are handed to the client's write
        buffer as one command, and the last goes through ``Msg.ack``, whose
        publish flushes them all (an ack per publish call cost a projection
        about 4% of its CPU).  Where the client would refuse a write (closed,
        reconnecting, draining) every message goes through ``Msg.ack`` so
        that it raises as usual."""
        send = frame_writer(self._nc)
        if send is None or not all(m.reply for m in messages):
            for msg in messages:
                await msg.ack()
            return
        if len(messages) > 1:
            await send(b"".join([b"PUB %s 0\r\n\r\n" % m.reply.encode() for m in messages[:-1]]))
        if messages:
            await messages[-1].ack()

    @property
    def connected(self) -> bool:
        return self._nc.is_connected

    async def fetch(self, batch: int, timeout: float) -> list[Msg]:
        """Up to ``batch`` messages, in stream order; [] when none came within
        ``timeout``.  Raises :class:`PullRefused` when the server refused the
        request and nothing was received."""
        self._refused = None
        if len(self._buffer) < batch:
            await self._request(batch - len(self._buffer), {"no_wait": True}, batch, timeout)
        if not self._buffer and self._refused is None:  # nothing there: wait for the first message
            await self._request(batch, {"expires": int(timeout * 1_000_000_000)}, 1, timeout)
        if not self._buffer and self._refused is not None:
            raise self._refused
        taken, self._buffer = self._buffer[:batch], self._buffer[batch:]
        return taken

    async def _request(self, batch: int, options: dict[str, object], enough: int, timeout: float) -> None:
        """Ask for ``batch`` messages; wait until the buffer holds ``enough``
        or the server ends a request."""
        self._wanted = enough
        self._ready.clear()
        await self._nc.publish(self._subject, json.dumps({"batch": batch, **options}).encode(), reply=self._inbox)
        try:
            # An answer lost to a reconnect ends the wait after the timeout
            # (and a little more, for the server's own expiry to arrive first).
            await asyncio.wait_for(self._ready.wait(), timeout + 1.0)
        except asyncio.TimeoutError:
            pass
        finally:
            self._wanted = 0

    async def _received(self, msg: Msg) -> None:
        status = msg.headers.get(STATUS_HEADER) if msg.headers and not msg.data else None
        if status is None:
            self._buffer.append(msg)
            if self._wanted and len(self._buffer) >= self._wanted:
                self._ready.set()
            return
        if status == "100":
            return
        if status not in _USUAL_ENDS:
            self._refused = PullRefused(status, (msg.headers or {}).get(DESCRIPTION_HEADER, ""))
        self._ready.set()
