"""A log event as the projections receive it: from a JetStream message
(with what its hash covers, to be checked against the log) or from the
PostgreSQL log itself."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Sequence

from nats.aio.msg import Msg

from lrs.bus import (
    EVENT_TYPE_HEADER,
    HASH_HEADER,
    MSG_ID_HEADER,
    PAYLOAD_REFERENCE_HEADER,
    POSITION_HEADER,
    PREV_HASH_HEADER,
    STORED_HEADER,
    TENANT_HEADER,
)
from lrs.eventlog import EventRecord
from lrs.message_check import parse_position

__all__ = ["LogEvent", "MessageClaim", "event_from_message", "log_events"]


@dataclass(frozen=True, slots=True)
class LogEvent:
    """One event of the log, from a JetStream message or from Postgres.

    An event read from a message also carries what its hash covers
    (``claim``), so the runner can check it against the log before applying
    it; an event read from Postgres has none (it is the log)."""

    position: int
    tenant: str
    event_type: str
    payload: bytes
    claim: MessageClaim | None = None


class MessageClaim(NamedTuple):
    """What a relayed message says about its event besides tenant, type and
    payload (docs/contracts.md).  A named tuple: made for every message, and
    a frozen dataclass costs microseconds more to build."""

    event_id: str  # as the headers carry them: text and hex, parsed when checked
    stored: str
    prev_hash: str | None  # None: a message without the header
    by_reference: bool  # the payload was left out: read it from PostgreSQL
    hash: str | None  # the hash the message names (checked for messages by reference)



def event_from_message(msg: Msg) -> LogEvent:
    """Raises KeyError/ValueError when the message lacks the LRS headers."""
    headers = msg.headers or {}
    return LogEvent(
        position=parse_position(headers[POSITION_HEADER]),
        tenant=headers[TENANT_HEADER],
        event_type=headers[EVENT_TYPE_HEADER],
        payload=msg.data,
        claim=MessageClaim(
            event_id=headers[MSG_ID_HEADER],
            stored=headers[STORED_HEADER],
            prev_hash=headers.get(PREV_HASH_HEADER),
            by_reference=PAYLOAD_REFERENCE_HEADER in headers,
            hash=headers.get(HASH_HEADER),
        ),
    )


def log_events(records: Sequence[EventRecord]) -> list[LogEvent]:
    """Events read from the PostgreSQL log (they are the log: nothing to check)."""
    return [LogEvent(r.position, r.tenant, r.event_type, bytes(r.payload)) for r in records]
