"""Reading the whole event stream back, for exactly-once checks."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import nats
import nats.errors
from nats.js import api
from nats.js.errors import NotFoundError

STREAM = "LRS_EVENTS"


@dataclass(frozen=True)
class StreamedEvent:
    msg_id: str
    position: int
    statement_id: str | None


async def read_stream(nats_url: str | list[str]) -> list[StreamedEvent]:
    """Every message of the event stream, in stream order (``nats_url``: one
    server, or the members of a cluster)."""
    import msgspec

    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        try:
            info = await js.stream_info(STREAM)
        except NotFoundError:
            return []
        total = info.state.messages
        if total == 0:
            return []
        sub = await js.pull_subscribe(
            "lrs.events.>",
            stream=STREAM,
            config=api.ConsumerConfig(
                ack_policy=api.AckPolicy.NONE, deliver_policy=api.DeliverPolicy.ALL, inactive_threshold=30.0
            ),
        )
        events: list[StreamedEvent] = []
        while len(events) < total:
            for msg in await sub.fetch(batch=min(1000, total - len(events)), timeout=5):
                headers = msg.headers or {}
                body = msgspec.json.decode(msg.data)
                events.append(
                    StreamedEvent(headers["Nats-Msg-Id"], int(headers["Lrs-Position"]), body.get("id"))
                )
        await sub.unsubscribe()
        return events
    finally:
        await nc.close()


async def wait_for_stream(nats_url: str | list[str], expected_positions: int, timeout: float = 90.0) -> list[StreamedEvent]:
    """Polls until the stream holds at least ``expected_positions`` distinct positions."""
    deadline = asyncio.get_running_loop().time() + timeout
    events: list[StreamedEvent] = []
    while True:
        try:
            events = await read_stream(nats_url)
        except nats.errors.TimeoutError as exc:
            # A cluster that has just lost a member (tests/e2e/test_cluster.py)
            # may answer a JetStream API request (this reader's own consumer)
            # after the client's 5 s; the stream's content is what is checked,
            # so ask again until the deadline.
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"the stream could not be read within {timeout}s: {exc!r}") from exc
            await asyncio.sleep(0.5)
            continue
        if len({e.position for e in events}) >= expected_positions:
            return events
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(
                f"stream has {len({e.position for e in events})} of {expected_positions} positions after {timeout}s"
            )
        await asyncio.sleep(0.5)
