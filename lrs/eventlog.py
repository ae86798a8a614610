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

import functools
import hashlib
import struct
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterable, Sequence

import msgspec

GENESIS_HASH = b"\x00" * 32
HASH_DOMAIN = b"lrs.event.v1"
STATEMENT_EVENT = "statement"
ONE_MICROSECOND = timedelta(microseconds=1)
ONE_SECOND = timedelta(seconds=1)

_encoder = msgspec.json.Encoder(order="sorted")
_u64 = struct.Struct(">Q")
_LENGTH_8 = _u64.pack(8)  # the position's length prefix
_LENGTH_16 = _u64.pack(16)  # the event id's
# The hash's first fields when the previous hash is a SHA-256 digest and the
# event id 16 bytes (every event): the domain, each length-prefixed field.
_START = struct.Struct(f">{len(HASH_DOMAIN)}sQ32sQQQ16s")


class EventRecord(msgspec.Struct, frozen=True):
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
    if moment.tzinfo is not timezone.utc:
        offset = moment.utcoffset()
        if offset is None:
            raise ValueError("stored must be timezone-aware")
        if offset:
            moment = moment.astimezone(timezone.utc)
    # %-formatting: three times cheaper than isoformat(timespec=...), and this
    # runs for every stored statement, in the writer and in the relay.
    return "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ" % (
        moment.year, moment.month, moment.day, moment.hour, moment.minute, moment.second, moment.microsecond,
    )


class StoredFormatter:
    """:func:`format_stored` for a run of times in order (a group's stored
    times, a batch of events): a time in the same UTC second as the one
    before it reuses that text's date and time and writes only the fraction."""

    __slots__ = ("_start", "_end", "_prefix")

    def __init__(self) -> None:
        self._start: datetime | None = None  # the UTC second the prefix belongs to
        self._end: datetime | None = None
        self._prefix = ""

    def __call__(self, moment: datetime) -> str:
        start = self._start
        if start is not None and moment.tzinfo is timezone.utc and start <= moment < self._end:  # type: ignore[operator]
            return f"{self._prefix}{moment.microsecond:06d}Z"
        text = format_stored(moment)
        if moment.tzinfo is timezone.utc and moment.year < 9999:  # the second after it exists
            self._start = start = moment.replace(microsecond=0)
            self._end = start + ONE_SECOND
            self._prefix = text[:-7]
        return text


def finalize_statement(body: dict[str, Any], stored: datetime) -> bytes:
    """The exact stored JSON: ``body`` plus ``stored`` (and ``timestamp`` if absent),
    encoded with sorted keys."""
    return finalize_with_text(body, format_stored(stored))


def finalize_with_text(body: dict[str, Any], text: str) -> bytes:
    """:func:`finalize_statement` with ``stored`` already formatted."""
    final = dict(body)
    final["stored"] = text
    if "timestamp" not in final:
        final["timestamp"] = text
    return _encoder.encode(final)


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
    return hash_with_text(
        prev_hash, position, event_id, tenant, event_type, format_stored(stored), payload
    )


def hash_with_text(
    prev_hash: bytes,
    position: int,
    event_id: uuid.UUID,
    tenant: str,
    event_type: str,
    stored_text: str,
    payload: bytes,
) -> bytes:
    """:func:`event_hash` with ``stored`` already formatted."""
    return _hasher(tenant, event_type)(prev_hash, position, event_id.bytes, stored_text, payload)


def hash_with_id_bytes(
    prev_hash: bytes,
    position: int,
    event_id: bytes,
    tenant: str,
    event_type: str,
    stored_text: str,
    payload: bytes,
) -> bytes:
    """:func:`hash_with_text` with the event id as its 16 bytes (a consumer
    checking messages need not build a UUID per message)."""
    return _hasher(tenant, event_type)(prev_hash, position, event_id, stored_text, payload)


@functools.lru_cache(maxsize=1024)
def _hasher(tenant: str, event_type: str) -> Callable[[bytes, int, bytes, str, bytes], bytes]:
    """:func:`hash_with_text` for one tenant and event type: their length-prefixed
    bytes are the same in every event, so they are encoded once."""
    tenant_bytes = tenant.encode("utf-8")
    type_bytes = event_type.encode("utf-8")
    fixed = b"".join((_u64.pack(len(tenant_bytes)), tenant_bytes, _u64.pack(len(type_bytes)), type_bytes))
    pack = _u64.pack
    pack_start = _START.pack
    join = b"".join
    sha256 = hashlib.sha256

    def digest(prev_hash: bytes, position: int, event_id: bytes, stored_text: str, payload: bytes) -> bytes:
        stored_bytes = stored_text.encode("ascii")
        if len(prev_hash) == 32 and len(event_id) == 16:
            # Every event's: the domain and the fixed-size fields in one pack.
            start = pack_start(HASH_DOMAIN, 32, prev_hash, 8, position, 16, event_id)
        else:  # genesis-like or malformed values: the same bytes, field by field
            start = join((HASH_DOMAIN, pack(len(prev_hash)), prev_hash, _LENGTH_8, pack(position),
                          _LENGTH_16, event_id))
        return sha256(join((
            start, fixed, pack(len(stored_bytes)), stored_bytes, pack(len(payload)), payload,
        ))).digest()

    return digest


def record_hash(record: EventRecord, stored_text: Callable[[datetime], str] = format_stored) -> bytes:
    """The hash ``record`` should carry; a run of records passes one
    :class:`StoredFormatter` as ``stored_text``."""
    return hash_with_text(
        record.prev_hash,
        record.position,
        record.event_id,
        record.tenant,
        record.event_type,
        stored_text(record.stored),
        record.payload,
    )


def stored_texts_of(records: Iterable[EventRecord]) -> list[str]:
    """The ``stored`` text of each of ``records`` (a run in position order),
    as :func:`format_stored` writes it.  The relay formats a batch's once and
    hands the same texts to its frames and to the anchor writer's check."""
    # StoredFormatter's rule written out as one loop (a time in the same UTC
    # second as the one before it reuses that text's date and time): calling
    # a formatter per event cost a third more (bench/relay_pieces.py).
    texts: list[str] = []
    append = texts.append
    utc = timezone.utc
    start = end = None
    prefix = ""
    for record in records:
        moment = record.stored
        if start is not None and moment.tzinfo is utc and start <= moment < end:  # type: ignore[operator]
            append(prefix + "%06dZ" % moment.microsecond)
            continue
        text = format_stored(moment)
        if moment.tzinfo is utc and moment.year < 9999:  # the second after it exists
            start = moment.replace(microsecond=0)
            end = start + ONE_SECOND
            prefix = text[:-7]
        append(text)
    return texts


# PostgreSQL's timestamptz as timestamptz_send gives it: microseconds since
# 2000-01-01 UTC, 8 bytes big-endian; its infinities are asyncpg's too.
POSTGRES_EPOCH = datetime(2000, 1, 1, tzinfo=timezone.utc)
_PG_INFINITY = 0x7FFF_FFFF_FFFF_FFFF
_PG_NEGATIVE_INFINITY = -0x8000_0000_0000_0000


def stored_at(microseconds: int) -> datetime:
    """The time PostgreSQL's timestamptz ``microseconds`` (since 2000-01-01
    UTC) names, as asyncpg decodes it: its infinities the largest and
    smallest naive datetimes (which :func:`format_stored` refuses, as it
    does asyncpg's), OverflowError past a datetime's range."""
    if microseconds == _PG_INFINITY:
        return datetime.max
    if microseconds == _PG_NEGATIVE_INFINITY:
        return datetime.min
    return POSTGRES_EPOCH + timedelta(microseconds=microseconds)


def stored_texts_of_sent(sent: Sequence[bytes]) -> list[str]:
    """The ``stored`` text of each of ``sent`` (a column read as
    ``timestamptz_send(stored)``: 8 bytes each), as :func:`stored_texts_of`
    gives it for the same times read as datetimes: a replay reads its pages
    so (asyncpg builds no timezone-aware datetime per row).  A time in the
    same second as the one before it reuses that text's date and time."""
    texts: list[str] = []
    append = texts.append
    second = None
    prefix = ""
    for microseconds in struct.unpack(">%dq" % len(sent), b"".join(sent)):
        this_second, fraction = divmod(microseconds, 1_000_000)
        if this_second == second:
            append(prefix + "%06dZ" % fraction)
            continue
        text = format_stored(stored_at(microseconds))
        second, prefix = this_second, text[:-7]
        append(text)
    return texts


def verify_chain(
    records: Iterable[EventRecord],
    *,
    prev_position: int = 0,
    prev_hash: bytes = GENESIS_HASH,
    stored_texts: Sequence[str] | None = None,
) -> int | None:
    """The first position at which the chain breaks, or None if it holds.

    ``records`` are consecutive events in position order starting right after
    ``prev_position`` (whose hash is ``prev_hash``; genesis by default).  A row
    breaks the chain if its position is not the next one, its ``prev_hash`` is
    not the previous row's hash, or its ``hash`` does not match its content.
    ``stored_texts``, when given, holds each record's ``stored`` as
    :func:`format_stored` writes it (:func:`stored_texts_of`), one per record;
    the hash is then taken over those texts instead of formatting the times
    again.  The check itself is :func:`verify_rows`'.
    """
    if stored_texts is None:
        records = list(records)
        stored_texts = stored_texts_of(records)
    return verify_rows(
        (
            (r.position, r.event_id.bytes, r.tenant, r.event_type, text, r.payload, r.prev_hash, r.hash)
            for r, text in zip(records, stored_texts, strict=True)
        ),
        prev_position=prev_position,
        prev_hash=prev_hash,
    )


# One event as verify_rows reads it: (position, event id's 16 bytes, tenant,
# event type, stored as format_stored writes it, payload, prev_hash, hash).
ChainRow = tuple[int, bytes, str, str, str, bytes, bytes, bytes]


def verify_rows(rows: Iterable[ChainRow], *, prev_position: int = 0, prev_hash: bytes = GENESIS_HASH) -> int | None:
    """:func:`verify_chain` over plain tuples (:data:`ChainRow`): the one
    check of the chain, which verify_chain hands its records to and a replay
    its pages' columns (projections/log_chain.py), so that both hash exactly
    what ``lrs audit verify`` does."""
    expected_position = prev_position + 1
    expected_prev = prev_hash
    # The hasher of the run's tenant and event type, looked up again only
    # where they change (a relayed batch is nearly always one of each).
    current_tenant = current_type = None
    hasher = None
    for position, event_id, tenant, event_type, stored_text, payload, row_prev, row_hash in rows:
        if position != expected_position or row_prev != expected_prev:
            return link_break(position, row_prev, expected_position, expected_prev)
        if tenant != current_tenant or event_type != current_type:
            current_tenant, current_type = tenant, event_type
            hasher = _hasher(tenant, event_type)
        if hasher(expected_prev, position, event_id, stored_text, payload) != row_hash:  # type: ignore[misc]
            return position
        expected_position += 1
        expected_prev = row_hash
    return None


def link_break(position: int, prev_hash: bytes, expected_position: int, expected_prev: bytes) -> int | None:
    """Where an event at ``position`` naming ``prev_hash`` breaks a chain that
    should go on at ``expected_position`` after ``expected_prev``: None when
    it links; the missing position when it comes later; else its own."""
    if position == expected_position and prev_hash == expected_prev:
        return None
    return expected_position if position > expected_position else position


def broken_chain_line(bad: int) -> str:
    """How ``lrs audit verify`` (and a replay that refuses the log) names the
    first position at which the chain breaks."""
    return f"hash chain broken: first altered or missing position {bad} (intact through position {bad - 1})"
