"""The relay's batch of event messages, with their HPUB frames built in one step.

Most of a relay batch goes out as plain publishes whose frames the relay
builds itself (:func:`lrs.nats.bus.hpub_frame`, byte for byte what nats-py
writes).  Building each event's :class:`~lrs.event_contract.OutgoingMessage`
(a dict of seven headers) and then its frame (a check and a line per header)
cost the relay about 2.7 µs an event.  :class:`EventBatch` writes the frame of
an event straight from its log record in one format: the header names are the
contract's own (valid as they are), the values the relay writes are a UUID,
decimal numbers, a stored time and hex digits, which need no stripping, and
the tenant and event type are treated as ``hpub_frame`` treats any value,
once per (tenant, event type).  tests/unit/nats/test_event_frames.py holds
every frame equal to ``hpub_frame(event_message(record))``.

The batch is also the sequence of those messages, built only when asked for
(the last message of a batch, which asks for an acknowledgement, and the
acknowledged path after a failed check).
"""

from __future__ import annotations

from functools import lru_cache
from operator import attrgetter
from typing import Sequence, overload

from lrs.event_contract import (
    EVENT_TYPE_HEADER,
    HASH_HEADER,
    MSG_ID_HEADER,
    PAYLOAD_REFERENCE_HEADER,
    POSITION_HEADER,
    PREV_HASH_HEADER,
    STORED_HEADER,
    TENANT_HEADER,
    OutgoingMessage,
    event_message,
    event_subject,
)
from lrs.eventlog import EventRecord

__all__ = ["EventBatch"]


def _header_value(value: str) -> str:
    """A header value as hpub_frame (and nats-py) writes it."""
    value = value.strip()
    if "\r" in value or "\n" in value:
        value = value.replace("\r", " ").replace("\n", " ")
    return value


@lru_cache(maxsize=1024)
def _fixed(tenant: str, event_type: str) -> tuple[str, str, bool]:
    """The subject and the tenant and event type header lines of an event,
    and whether both are ASCII (then a header's length in bytes is its
    length in characters)."""
    lines = (f"{TENANT_HEADER}: {_header_value(tenant)}\r\n"
             f"{EVENT_TYPE_HEADER}: {_header_value(event_type)}\r\n")
    subject = event_subject(tenant, event_type)
    return subject, lines, subject.isascii() and lines.isascii()


# The header block of an event's message, up to and with the blank line that
# ends it: inline, and by reference.
_HEADER = (f"NATS/1.0\r\n{MSG_ID_HEADER}: %s\r\n{POSITION_HEADER}: %d\r\n%s{STORED_HEADER}: %s\r\n"
           f"{HASH_HEADER}: %s\r\n{PREV_HASH_HEADER}: %s\r\n\r\n")
_HEADER_BY_REFERENCE = _HEADER[:-2] + f"{PAYLOAD_REFERENCE_HEADER}: %d\r\n\r\n"
_HPUB = "HPUB %s  %d %d\r\n%s"
_payload_of = attrgetter("payload")


class EventBatch(Sequence[OutgoingMessage]):
    """The messages of ``records`` (what :func:`event_message` gives for each),
    and their frames (:meth:`frames`).  ``stored_texts`` holds each record's
    ``stored`` as :func:`lrs.eventlog.format_stored` writes it
    (:func:`lrs.eventlog.stored_texts_of`), one per record."""

    __slots__ = ("_records", "_texts", "_inline_max")

    def __init__(self, records: Sequence[EventRecord], stored_texts: Sequence[str], inline_max: int) -> None:
        if len(stored_texts) != len(records):
            raise ValueError(f"{len(records)} records but {len(stored_texts)} stored texts")
        self._records = records
        self._texts = stored_texts
        self._inline_max = inline_max

    def __len__(self) -> int:
        return len(self._records)

    @overload
    def __getitem__(self, index: int) -> OutgoingMessage: ...
    @overload
    def __getitem__(self, index: slice) -> list[OutgoingMessage]: ...
    def __getitem__(self, index: int | slice) -> OutgoingMessage | list[OutgoingMessage]:
        if isinstance(index, slice):
            return [self._message(r, t) for r, t in zip(self._records[index], self._texts[index])]
        return self._message(self._records[index], self._texts[index])

    def _message(self, record: EventRecord, stored_text: str) -> OutgoingMessage:
        return event_message(record, lambda _moment: stored_text, self._inline_max)

    def head(self, count: int) -> EventBatch:
        """The batch of the first ``count`` messages."""
        return EventBatch(self._records[:count], self._texts[:count], self._inline_max)

    def max_data_length(self) -> int:
        """The largest data of the messages (a payload sent by reference has none)."""
        inline_max = self._inline_max
        longest = max(map(len, map(_payload_of, self._records)), default=0)  # one pass in C: the usual batch
        if longest <= inline_max:
            return longest
        return max((n if (n := len(r.payload)) <= inline_max else 0 for r in self._records), default=0)

    def frames(self) -> list[bytes]:
        """The HPUB frames of the messages, in order."""
        parts = self._parts()
        return [b"".join(parts[i:i + 3]) for i in range(0, len(parts), 3)]

    def wire(self) -> bytes:
        """The frames of the messages, in order, as one run of bytes: each
        payload is copied once, into the run."""
        return b"".join(self._parts())

    def _parts(self) -> list[bytes]:
        """Per message: the frame up to its data, its data, the closing CRLF."""
        inline_max = self._inline_max
        out: list[bytes] = []
        append = out.append
        last_hash: bytes | None = None
        last_hex = ""
        for record, stored_text in zip(self._records, self._texts):
            subject, fixed, ascii_only = _fixed(record.tenant, record.event_type)
            prev_hash = record.prev_hash
            prev_hex = last_hex if prev_hash == last_hash else prev_hash.hex()
            last_hash = record.hash
            last_hex = last_hash.hex()
            data = record.payload
            if len(data) > inline_max:
                header = _HEADER_BY_REFERENCE % (
                    record.event_id, record.position, fixed, stored_text, last_hex, prev_hex, len(data))
                data = b""
            else:
                header = _HEADER % (record.event_id, record.position, fixed, stored_text, last_hex, prev_hex)
            if ascii_only:
                # The UUID, the numbers, the stored time and the hex digits
                # are ASCII: the frame is one format and one encode.
                size = len(header)
                append((_HPUB % (subject, size, size + len(data), header)).encode())
            else:
                encoded = header.encode()
                size = len(encoded)
                append(b"HPUB %b  %d %d\r\n%b" % (subject.encode(), size, size + len(data), encoded))
            append(data)
            append(b"\r\n")
        return out
