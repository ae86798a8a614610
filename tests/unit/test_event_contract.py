"""The relayed-event contract: a log event, its message and back (pure)."""

from __future__ import annotations

import subprocess
import sys
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from lrs.event_contract import (
    HEADERS,
    PAYLOAD_REFERENCE_HEADER,
    RelayedEvent,
    event_message,
    event_subject,
    from_message,
    from_record,
    to_message,
)
from lrs.eventlog import EventRecord, StoredFormatter, hash_with_text, record_hash

STORED = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=timezone.utc)


def record(payload: bytes = b'{"id":"x"}', tenant: str = "default", position: int = 7) -> EventRecord:
    draft = EventRecord(position, uuid.uuid4(), tenant, "statement", None, STORED, payload, b"\x01" * 32, b"")
    return EventRecord(**{**{f: getattr(draft, f) for f in draft.__struct_fields__}, "hash": record_hash(draft)})


def test_a_log_event_survives_the_message_inline() -> None:
    r = record()
    event = from_record(r)
    message = to_message(event)
    assert message.subject == "lrs.events.default.statement"
    assert message.data == r.payload
    assert set(message.headers) == set(HEADERS) - {PAYLOAD_REFERENCE_HEADER}
    back = from_message(message.headers, message.data)
    assert back == event and not back.by_reference
    # What the message carries is what the hash covers: recomputing it gives the log's.
    assert hash_with_text(bytes.fromhex(back.prev_hash), back.position, uuid.UUID(back.event_id), back.tenant,
                          back.event_type, back.stored, back.payload) == r.hash


def test_a_large_payload_travels_by_reference_and_the_message_says_its_size() -> None:
    r = record(payload=b'{"id":"' + b"x" * 100 + b'"}')
    message = event_message(r, inline_max=10)
    assert message.data == b""
    assert message.headers[PAYLOAD_REFERENCE_HEADER] == str(len(r.payload))
    back = from_message(message.headers, message.data)
    assert back.by_reference and back.payload == b"" and back.payload_size == str(len(r.payload))
    assert back.hash == r.hash.hex() and back.position == r.position
    # A message by reference read back is written again the same way.
    assert to_message(back) == message


@pytest.mark.parametrize("inline_max", [1, 10, 1 << 20])
def test_the_relays_shorthand_is_the_contracts_message(inline_max: int) -> None:
    for r in (record(), record(payload=b"{}" * 50, tenant="a.b")):
        assert event_message(r, inline_max=inline_max) == to_message(from_record(r), inline_max)


def test_a_payload_at_the_limit_stays_inline() -> None:
    r = record()
    assert event_message(r, inline_max=len(r.payload)).data == r.payload


def test_the_relays_batch_formatter_gives_the_same_stored_text() -> None:
    formatter = StoredFormatter()
    records = [record(position=p) for p in (1, 2)]
    moved = EventRecord(**{**{f: getattr(records[1], f) for f in records[1].__struct_fields__},
                           "stored": STORED + timedelta(microseconds=5)})
    for r in (records[0], moved):
        assert event_message(r, formatter) == event_message(r)


def test_tenant_and_event_type_are_escaped_in_the_subject_but_not_in_the_headers() -> None:
    message = event_message(record(tenant="a.b c"))
    assert message.subject == "lrs.events.a%2Eb%20c.statement" == event_subject("a.b c", "statement")
    assert from_message(message.headers, message.data).tenant == "a.b c"


@pytest.mark.parametrize("missing", ["Nats-Msg-Id", "Lrs-Position", "Lrs-Tenant", "Lrs-Event-Type", "Lrs-Stored"])
def test_a_message_without_a_required_header_is_refused_by_name(missing: str) -> None:
    message = event_message(record())
    headers = {k: v for k, v in message.headers.items() if k != missing}
    with pytest.raises(ValueError, match=missing):
        from_message(headers, message.data)


@pytest.mark.parametrize("position", ["0", "-1", "+5", " 5", str(2**63), "seven"])
def test_a_position_the_relay_never_writes_is_refused(position: str) -> None:
    message = event_message(record())
    with pytest.raises(ValueError, match="position"):
        from_message({**message.headers, "Lrs-Position": position}, message.data)


def test_hashes_are_optional_and_stay_absent() -> None:
    message = event_message(record())
    headers = {k: v for k, v in message.headers.items() if k not in ("Lrs-Hash", "Lrs-Prev-Hash")}
    event = from_message(headers, message.data)
    assert (event.hash, event.prev_hash) == (None, None)
    assert dict(to_message(event).headers) == headers


def test_a_relayed_event_is_a_value() -> None:
    event = RelayedEvent(1, "id", "t", "statement", "s", b"{}")
    assert event == RelayedEvent(1, "id", "t", "statement", "s", b"{}")
    with pytest.raises(AttributeError):
        event.position = 2  # type: ignore[misc]


def test_the_contract_imports_no_driver() -> None:
    """Consumers outside the service (the connectors) import it alone."""
    code = "import sys, lrs.event_contract; print(' '.join(sorted(sys.modules)))"
    loaded = set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split())
    assert not {"nats", "asyncpg", "aiohttp", "structlog", "cryptography"} & loaded
    assert {m for m in loaded if m.startswith("lrs.")} == {"lrs.event_contract", "lrs.eventlog"}
