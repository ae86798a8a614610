"""The event log's pure rules: the stored form of a statement and the hash chain.

One exact timestamp format is used everywhere the LRS writes ``stored``:
ISO 8601 in UTC with six fractional digits and a ``Z``, for example
``2024-05-01T12:00:00.000000Z`` (see :func:`format_stored`).

Each event's hash is SHA-256 over a length-prefixed encoding of
``prev_hash, position, event_id, tenant, event_type, stored, payload`` so that
no two different events can encode to the same bytes.  Anyone holding the
rows (or the NATS messages with their ``Lrs-*`` headers) can recompute it.
"""

from __future__ import annotations

import hashlib
import struct
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable

import msgspec

GENESIS_HASH = b"\x00" * 32
HASH_DOMAIN = b"lrs.event.v1"
STATEMENT_EVENT = "statement"
ONE_MICROSECOND = timedelta(microseconds=1)

_encoder = msgspec.json.Encoder(order="sorted")
_u64 = struct.Struct(">Q")


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One row of the events table."""

    position: int
    event_id: uuid.UUID
    tenant: str
    event_type: str
    statement_id: uuid.UUID | None
    stored: datetime
    payload: bytes
    prev_hash: bytes
    hash: bytes


def format_stored(moment: datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SS.ffffffZ`` in UTC; ``moment`` must be timezone-aware."""
    if moment.tzinfo is None:
        raise ValueError("stored must be timezone-aware")
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def finalize_statement(body: dict[str, Any], stored: datetime) -> bytes:
    """The exact stored JSON: ``body`` plus ``stored`` (and ``timestamp`` if absent),
    encoded with sorted keys."""
    text = format_stored(stored)
    final = dict(body)
    final["stored"] = text
    if "timestamp" not in final:
        final["timestamp"] = text
    return _encoder.encode(final)


def _field(data: bytes) -> bytes:
    return _u64.pack(len(data)) + data


def event_hash(
    prev_hash: bytes,
    position: int,
    event_id: uuid.UUID,
    tenant: str,
    event_type: str,
    stored: datetime,
    payload: bytes,
) -> bytes:
    """SHA-256 over the length-prefixed fields (position as 8 bytes big-endian,
    event id as its 16 bytes, text as UTF-8, stored as :func:`format_stored`)."""
    digest = hashlib.sha256(HASH_DOMAIN)
    digest.update(_field(prev_hash))
    digest.update(_field(_u64.pack(position)))
    digest.update(_field(event_id.bytes))
    digest.update(_field(tenant.encode("utf-8")))
    digest.update(_field(event_type.encode("utf-8")))
    digest.update(_field(format_stored(stored).encode("ascii")))
    digest.update(_field(payload))
    return digest.digest()


def record_hash(record: EventRecord) -> bytes:
    return event_hash(
        record.prev_hash,
        record.position,
        record.event_id,
        record.tenant,
        record.event_type,
        record.stored,
        record.payload,
    )


def verify_chain(
    records: Iterable[EventRecord],
    *,
    prev_position: int = 0,
    prev_hash: bytes = GENESIS_HASH,
) -> int | None:
    """The first position at which the chain breaks, or None if it holds.

    ``records`` are consecutive events in position order starting right after
    ``prev_position`` (whose hash is ``prev_hash``; genesis by default).  A row
    breaks the chain if its position is not the next one, its ``prev_hash`` is
    not the previous row's hash, or its ``hash`` does not match its content.
    """
    expected_position = prev_position + 1
    expected_prev = prev_hash
    for record in records:
        if (
            record.position != expected_position
            or record.prev_hash != expected_prev
            or record_hash(record) != record.hash
        ):
            return expected_position if record.position > expected_position else record.position
        expected_position += 1
        expected_prev = record.hash
    return None
