"""The relayed event: one message of the ``LRS_EVENTS`` stream (pure).

This module is the whole contract between the relay (``lrs/relay.py``), which
writes the messages, and every consumer that reads them (the projections, ``lrs
forward``): the subject, the header names, :class:`RelayedEvent` and the two
functions between it and a message, :func:`to_message` and
:func:`from_message`.  docs/contracts.md describes it in prose; the
connectors import nothing else from ``lrs``.

A message carries an event of the log in PostgreSQL (:class:`lrs.eventlog.
EventRecord`) in text form: its id and stored time as the text the hash
covers, its hashes as hex.  A payload above the relay's inline limit travels
*by reference*: the message's data is empty, ``Lrs-Payload-Size`` gives the
payload's length, and the consumer reads it from the log.
"""

from __future__ import annotations

import functools
import re
from datetime import datetime
from typing import Callable, Mapping

import msgspec

from lrs.eventlog import EventRecord, format_stored

__all__ = [
    "DEFAULT_INLINE_MAX_BYTES",
    "EVENT_TYPE_HEADER",
    "EventRecord",
    "HASH_HEADER",
    "HEADERS",
    "HEADER_LAYOUTS",
    "LAST_POSITION",
    "MSG_ID_HEADER",
    "OutgoingMessage",
    "PAYLOAD_REFERENCE_HEADER",
    "POSITION_HEADER",
    "PREV_HASH_HEADER",
    "RelayedEvent",
    "STORED_HEADER",
    "SUBJECT_PREFIX",
    "TENANT_HEADER",
    "event_message",
    "event_subject",
    "format_stored",
    "from_message",
    "from_record",
    "parse_position",
    "subject_token",
    "to_message",
]

SUBJECT_PREFIX = "lrs.events"

# Message headers (docs/contracts.md, "Headers").
MSG_ID_HEADER = "Nats-Msg-Id"
POSITION_HEADER = "Lrs-Position"
TENANT_HEADER = "Lrs-Tenant"
EVENT_TYPE_HEADER = "Lrs-Event-Type"
STORED_HEADER = "Lrs-Stored"
HASH_HEADER = "Lrs-Hash"
PREV_HASH_HEADER = "Lrs-Prev-Hash"
# Set on a message published by reference: its data is empty and the payload
# (of the size given) is read from the event log in PostgreSQL.
PAYLOAD_REFERENCE_HEADER = "Lrs-Payload-Size"
HEADERS = (
    MSG_ID_HEADER, POSITION_HEADER, TENANT_HEADER, EVENT_TYPE_HEADER, STORED_HEADER, HASH_HEADER,
    PREV_HASH_HEADER, PAYLOAD_REFERENCE_HEADER,
)

# The orders to_message writes the headers in: inline, and by reference.  A
# reader that knows them parses such a block with one pattern
# (lrs.nats.headers.layout_parse); a block in any other order or form is
# parsed as any other.
HEADER_LAYOUTS = (HEADERS[:-1], HEADERS)

LAST_POSITION = 2**63 - 1  # the log's positions are PostgreSQL bigints
# A payload above this travels by reference unless the relay is told otherwise.
DEFAULT_INLINE_MAX_BYTES = 512 * 1024

_PLAIN_TOKEN = re.compile(r"[A-Za-z0-9_\-:@+=,;~!$&'()\[\]{}^#/|?]+")
_ESCAPED = frozenset(".*>%")


class OutgoingMessage(msgspec.Struct, frozen=True):
    """A message as published: subject, data and headers."""

    subject: str
    data: bytes
    headers: Mapping[str, str]


class RelayedEvent(msgspec.Struct, frozen=True, gc=False):
    """What one relayed message says, as its headers carry it.

    ``event_id`` and ``stored`` are the texts the hash covers, the hashes hex;
    like ``payload_size``, they are parsed only when checked against the log
    (lrs.message_check, connectors/forward/logcheck.py), so a forged value is
    refused there rather than failing here.  ``hash`` and ``prev_hash`` are
    None on a message without the header.  A message by reference has
    ``payload_size`` (the decimal length of the payload left out) and an
    empty ``payload``."""

    position: int
    event_id: str
    tenant: str
    event_type: str
    stored: str
    payload: bytes
    hash: str | None = None
    prev_hash: str | None = None
    payload_size: str | None = None

    @property
    def by_reference(self) -> bool:
        """The payload was left out: read it from the log."""
        return self.payload_size is not None


def subject_token(text: str) -> str:
    """``text`` as one subject token: ``.``, ``*``, ``>``, ``%``, whitespace and
    control characters are percent-encoded (a tenant "a.b" becomes "a%2Eb")."""
    if _PLAIN_TOKEN.fullmatch(text):
        return text
    if not text:
        return "%"  # an empty token would make the subject invalid
    return "".join(_escape(c) if c in _ESCAPED or c.isspace() or not c.isprintable() else c for c in text)


def _escape(char: str) -> str:
    return "".join(f"%{byte:02X}" for byte in char.encode("utf-8"))


@functools.lru_cache(maxsize=1024)
def event_subject(tenant: str, event_type: str) -> str:
    return f"{SUBJECT_PREFIX}.{subject_token(tenant)}.{subject_token(event_type)}"


def parse_position(text: str) -> int:
    """The position an ``Lrs-Position`` header names.  ValueError unless it
    is the decimal the relay writes, 1 to 2^63 - 1: a larger number is no
    position of the log, and looking it up raised in asyncpg (out of bigint
    range), which stopped the consumer on one forged message for good."""
    if not (text.isascii() and text.isdigit()):
        raise ValueError(f"position {text[:30]!r} is not a decimal number")
    position = int(text)
    if not 1 <= position <= LAST_POSITION:
        raise ValueError(f"position {text[:30]} is outside 1..{LAST_POSITION}")
    return position


def from_record(record: EventRecord, stored_text: Callable[[datetime], str] = format_stored) -> RelayedEvent:
    """The event of the log as a message says it, payload inline.  A batch
    passes one :class:`lrs.eventlog.StoredFormatter` as ``stored_text``."""
    return RelayedEvent(
        position=record.position,
        event_id=str(record.event_id),
        tenant=record.tenant,
        event_type=record.event_type,
        stored=stored_text(record.stored),
        payload=bytes(record.payload),
        hash=bytes(record.hash).hex(),
        prev_hash=bytes(record.prev_hash).hex(),
    )


def to_message(event: RelayedEvent, inline_max: int = DEFAULT_INLINE_MAX_BYTES) -> OutgoingMessage:
    """The message for ``event``.  A payload above ``inline_max`` bytes is
    left out: the message then says its size in ``Lrs-Payload-Size``."""
    payload = event.payload
    headers = {
        MSG_ID_HEADER: event.event_id,
        POSITION_HEADER: str(event.position),
        TENANT_HEADER: event.tenant,
        EVENT_TYPE_HEADER: event.event_type,
        STORED_HEADER: event.stored,
    }
    if event.hash is not None:
        headers[HASH_HEADER] = event.hash
    if event.prev_hash is not None:
        headers[PREV_HASH_HEADER] = event.prev_hash
    if event.payload_size is not None:
        headers[PAYLOAD_REFERENCE_HEADER] = event.payload_size
    elif len(payload) > inline_max:
        headers[PAYLOAD_REFERENCE_HEADER] = str(len(payload))
        payload = b""
    return OutgoingMessage(subject=event_subject(event.tenant, event.event_type), data=payload, headers=headers)


def event_message(
    record: EventRecord,
    stored_text: Callable[[datetime], str] = format_stored,
    inline_max: int = DEFAULT_INLINE_MAX_BYTES,
) -> OutgoingMessage:
    """The relay's message for one event of the log: what
    ``to_message(from_record(record, stored_text), inline_max)`` gives
    (tests/unit/test_event_contract.py holds them equal), without the
    :class:`RelayedEvent` in between, for it runs for every event relayed."""
    payload = bytes(record.payload)
    headers = {
        MSG_ID_HEADER: str(record.event_id),
        POSITION_HEADER: str(record.position),
        TENANT_HEADER: record.tenant,
        EVENT_TYPE_HEADER: record.event_type,
        STORED_HEADER: stored_text(record.stored),
        HASH_HEADER: bytes(record.hash).hex(),
        PREV_HASH_HEADER: bytes(record.prev_hash).hex(),
    }
    if len(payload) > inline_max:
        headers[PAYLOAD_REFERENCE_HEADER] = str(len(payload))
        payload = b""
    return OutgoingMessage(subject=event_subject(record.tenant, record.event_type), data=payload, headers=headers)


def from_message(headers: Mapping[str, str] | None, data: bytes | None) -> RelayedEvent:
    """The event a message says it carries.  ValueError naming the header
    when one the contract requires is missing, or when ``Lrs-Position`` is
    not a position of the log.  Nothing here says
    the message is the log's event: lrs.message_check decides that."""
    headers = headers or {}
    try:
        event_id = headers[MSG_ID_HEADER]
        position_text = headers[POSITION_HEADER]
        tenant = headers[TENANT_HEADER]
        event_type = headers[EVENT_TYPE_HEADER]
        stored = headers[STORED_HEADER]
    except KeyError as exc:
        raise ValueError(f"message without the {exc.args[0]} header") from None
    return RelayedEvent(
        position=parse_position(position_text),
        event_id=event_id,
        tenant=tenant,
        event_type=event_type,
        stored=stored,
        payload=data or b"",
        hash=headers.get(HASH_HEADER),
        prev_hash=headers.get(PREV_HASH_HEADER),
        payload_size=headers.get(PAYLOAD_REFERENCE_HEADER),
    )
