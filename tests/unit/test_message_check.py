"""lrs.message_check: a message is the log's event only when its recomputed
hash, chained on the log's previous hash, is the log's hash (pure)."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

from lrs.eventlog import GENESIS_HASH, EventRecord, format_stored, record_hash
from lrs.event_contract import parse_position
from lrs.message_check import needed_positions, refusal

STORED = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=timezone.utc)


def chain(n: int) -> list[EventRecord]:
    records, prev = [], GENESIS_HASH
    for position in range(1, n + 1):
        record = EventRecord(position, uuid.uuid4(), "default", "statement", None, STORED, b'{"n":%d}' % position, prev, b"")
        record = EventRecord(*[getattr(record, f) for f in record.__struct_fields__][:-1], record_hash(record))
        records.append(record)
        prev = record.hash
    return records


def check(record: EventRecord, hashes: dict[int, bytes], **changes: object) -> str | None:
    fields = dict(
        position=record.position, tenant=record.tenant, event_type=record.event_type, payload=record.payload,
        event_id=str(record.event_id), stored=format_stored(record.stored), prev_hash=record.prev_hash.hex(),
        by_reference=False, log_hashes=hashes, claimed_hash=record.hash.hex(),
    )
    fields.update(changes)
    return refusal(**fields)


def test_the_logs_events_pass_and_every_change_is_refused() -> None:
    records = chain(3)
    hashes = {r.position: r.hash for r in records}
    assert needed_positions([1, 3]) == [1, 2, 3]
    assert [check(r, hashes) for r in records] == [None, None, None]
    second = records[1]
    assert check(second, hashes, payload=b'{"n":9}') == "hash_mismatch"
    assert check(second, hashes, tenant="other") == "hash_mismatch"
    assert check(second, hashes, event_id=str(uuid.uuid4())) == "hash_mismatch"
    assert check(second, hashes, stored="2026-01-02T03:04:05.000000Z") == "hash_mismatch"
    assert check(second, hashes, prev_hash="00" * 32) == "prev_hash_mismatch"
    assert check(second, hashes, position=4) == "not_in_log"
    assert check(second, hashes, event_id="not-a-uuid") == "unreadable"
    assert check(second, hashes, prev_hash=None) is None  # the header is optional; the hash still chains


def test_a_self_consistent_forgery_is_refused_because_the_log_decides() -> None:
    records = chain(2)
    hashes = {r.position: r.hash for r in records}
    forged = EventRecord(2, uuid.uuid4(), "default", "statement", None, STORED, b'{"forged":1}', records[0].hash, b"")
    forged = EventRecord(*[getattr(forged, f) for f in forged.__struct_fields__][:-1], record_hash(forged))
    assert check(forged, hashes) == "hash_mismatch"


def test_by_reference_needs_the_logs_hash() -> None:
    records = chain(2)
    hashes = {r.position: r.hash for r in records}
    assert check(records[1], hashes, payload=b"", by_reference=True) is None
    assert check(records[1], hashes, payload=b"", by_reference=True, claimed_hash="11" * 32) == "hash_mismatch"


def test_a_position_is_the_decimal_the_relay_writes_within_bigint() -> None:
    assert parse_position("1") == 1
    assert parse_position(str(2**63 - 1)) == 2**63 - 1
    for text in ("0", "-3", str(2**63), str(2**64 + 3), "1e3", "+5", " 5", "1_0", "\u0663", ""):
        try:
            parse_position(text)
        except ValueError:
            continue
        raise AssertionError(f"{text!r} was taken as a position")
