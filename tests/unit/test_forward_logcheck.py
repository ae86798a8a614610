"""The forwarder's check of a message against the log's row (pure)."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

from connectors.forward.logcheck import compare, stored_text
from lrs.eventlog import EventRecord, format_stored, record_hash
from lrs.event_contract import event_message

STORED = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=timezone.utc)


def row(payload: bytes = b'{"id":"x"}') -> dict:
    record = EventRecord(7, uuid.uuid4(), "default", "statement", None, STORED, payload, b"\x01" * 32, b"")
    record = EventRecord(**{**{f: getattr(record, f) for f in record.__struct_fields__}, "hash": record_hash(record)})
    return {f: getattr(record, f) for f in record.__struct_fields__}


def message(r: dict, inline_max: int = 1 << 20):
    return event_message(EventRecord(**r), inline_max=inline_max)


def test_the_relays_message_is_the_logs_event_inline_and_by_reference() -> None:
    r = row()
    inline = message(r)
    assert compare(inline.headers, inline.data, r).refusal is None
    by_reference = message(r, inline_max=1)
    assert by_reference.data == b""
    checked = compare(by_reference.headers, by_reference.data, r)
    assert checked.refusal is None and checked.payload == r["payload"]
    assert stored_text(STORED) == format_stored(STORED)


def test_altered_forged_and_misplaced_messages_are_refused_and_replaced_by_the_log() -> None:
    r = row()
    m = message(r)
    altered = compare(m.headers, m.data.replace(b"x", b"y"), r)
    assert altered.refusal == "payload_mismatch" and altered.payload == r["payload"]
    other_tenant = compare({**m.headers, "Lrs-Tenant": "evil"}, m.data, r)
    assert other_tenant.refusal == "lrs-tenant_mismatch" and other_tenant.headers["Lrs-Tenant"] == "default"
    assert compare({**m.headers, "Nats-Msg-Id": str(uuid.uuid4())}, m.data, r).refusal == "nats-msg-id_mismatch"
    assert compare({**m.headers, "Lrs-Prev-Hash": "00" * 32}, m.data, r).refusal == "lrs-prev-hash_mismatch"
    beyond = compare(m.headers, m.data, None)
    assert beyond.refusal == "not_in_log" and beyond.payload is None


def test_a_position_outside_bigint_is_no_position() -> None:
    from connectors.forward.logcheck import _position

    assert _position({"Lrs-Position": str(2**63 - 1)}) == 2**63 - 1
    for text in ("0", "-1", str(2**63), str(10**30), "+5", " 5", "\u0663"):
        assert _position({"Lrs-Position": text}) is None, text
    assert _position({}) is None
