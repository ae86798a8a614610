"""JetStream messages as the forwarder handles them: how often one was
delivered, an unreadable one as a statement to park, and a batch kept in
progress while the target is waited for."""

from __future__ import annotations

import asyncio
import contextlib
from typing import AsyncIterator

import nats.errors
from nats.aio.msg import Msg

from connectors.forward.model import LogStatement
from lrs.event_contract import EVENT_TYPE_HEADER, MSG_ID_HEADER, POSITION_HEADER, STORED_HEADER, TENANT_HEADER
from lrs.event_contract import RelayedEvent


def delivery_count(msg: Msg) -> int:
    try:
        return msg.metadata.num_delivered or 1
    except (nats.errors.Error, ValueError, AttributeError):  # not a JetStream message
        return 1


def unreadable_event(msg: Msg) -> LogStatement:
    headers = msg.headers or {}
    try:
        position = int(headers.get(POSITION_HEADER, "0"))
    except ValueError:
        position = 0
    event_id = headers.get(MSG_ID_HEADER) or f"stream-seq-{msg.metadata.sequence.stream}"
    event = RelayedEvent(position, event_id, headers.get(TENANT_HEADER, ""), headers.get(EVENT_TYPE_HEADER, ""),
                         headers.get(STORED_HEADER, ""), msg.data or b"")
    return LogStatement(event, {})


@contextlib.asynccontextmanager
async def kept_in_progress(messages: list[Msg], interval: float = 15.0) -> AsyncIterator[None]:
    """While the target is being waited for, tell JetStream the messages are
    still being worked on, so they are not redelivered meanwhile."""

    async def beat() -> None:
        while True:
            await asyncio.sleep(interval)
            for msg in messages:
                with contextlib.suppress(nats.errors.Error, OSError):
                    await msg.in_progress()

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
