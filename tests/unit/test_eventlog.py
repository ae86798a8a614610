"""The stored form of a statement and the hash chain."""

from __future__ import annotations

import hashlib
import struct
import uuid
from datetime import datetime, timedelta, timezone

import msgspec
import pytest

from lrs.eventlog import (
    StoredFormatter,
    GENESIS_HASH,
    HASH_DOMAIN,
    EventRecord,
    event_hash,
    finalize_statement,
    format_stored,
    stored_texts_of,
    verify_chain,
)

STORED = datetime(2024, 5, 1, 12, 0, 0, 7, tzinfo=timezone.utc)


def test_format_stored_is_utc_with_microseconds_and_z() -> None:
    plus_two = timezone(timedelta(hours=2))
    assert format_stored(STORED) == "2024-05-01T12:00:00.000007Z"
    assert format_stored(datetime(2024, 5, 1, 14, 0, tzinfo=plus_two)) == "2024-05-01T12:00:00.000000Z"
    with pytest.raises(ValueError):
        format_stored(datetime(2024, 5, 1))


def test_finalize_adds_stored_and_missing_timestamp_with_sorted_keys() -> None:
    body = {"verb": {"id": "http://example.com/v"}, "actor": {"mbox": "mailto:a@example.com"}}
    encoded = finalize_statement(body, STORED)
    assert encoded.startswith(b'{"actor":')
    decoded = msgspec.json.decode(encoded)
    assert decoded["stored"] == "2024-05-01T12:00:00.000007Z"
    assert decoded["timestamp"] == "2024-05-01T12:00:00.000007Z"
    assert "stored" not in body  # the input is not modified


def test_finalize_keeps_a_given_timestamp() -> None:
    body = {"timestamp": "2020-01-01T00:00:00+02:00", "id": "x"}
    decoded = msgspec.json.decode(finalize_statement(body, STORED))
    assert decoded["timestamp"] == "2020-01-01T00:00:00+02:00"


def _hash_args(**changes: object) -> dict[str, object]:
    args: dict[str, object] = dict(
        prev_hash=GENESIS_HASH,
        position=1,
        event_id=uuid.UUID(int=1),
        tenant="ab",
        event_type="statement",
        stored=STORED,
        payload=b"{}",
    )
    args.update(changes)
    return args


def test_event_hash_depends_on_every_field() -> None:
    base = event_hash(**_hash_args())  # type: ignore[arg-type]
    assert len(base) == 32
    variants = [
        _hash_args(prev_hash=b"\x01" * 32),
        _hash_args(position=2),
        _hash_args(event_id=uuid.UUID(int=2)),
        _hash_args(tenant="abc"),
        _hash_args(event_type="statements"),
        _hash_args(stored=STORED + timedelta(microseconds=1)),
        _hash_args(payload=b"{ }"),
    ]
    hashes = {event_hash(**v) for v in variants}  # type: ignore[arg-type]
    assert base not in hashes and len(hashes) == len(variants)


def test_event_hash_is_unambiguous_across_field_boundaries() -> None:
    # Moving a character from one text field to the next changes the hash.
    a = event_hash(**_hash_args(tenant="ab", event_type="cd"))  # type: ignore[arg-type]
    b = event_hash(**_hash_args(tenant="abc", event_type="d"))  # type: ignore[arg-type]
    assert a != b


def _chain(count: int) -> list[EventRecord]:
    records = []
    prev = GENESIS_HASH
    for position in range(1, count + 1):
        stored = STORED + timedelta(microseconds=position)
        payload = finalize_statement({"n": position}, stored)
        event_id = uuid.UUID(int=position)
        digest = event_hash(prev, position, event_id, "t", "statement", stored, payload)
        records.append(EventRecord(position, event_id, "t", "statement", uuid.UUID(int=position),
                                   stored, payload, prev, digest))
        prev = digest
    return records


def test_verify_chain_accepts_an_intact_chain() -> None:
    records = _chain(5)
    assert verify_chain(records) is None
    assert verify_chain([]) is None
    assert verify_chain(records[2:], prev_position=2, prev_hash=records[1].hash) is None


def test_verify_chain_names_a_tampered_payload() -> None:
    records = _chain(5)
    records[2] = msgspec.structs.replace(records[2], payload=b'{"n":99}')
    assert verify_chain(records) == 3


def test_verify_chain_names_a_rehashed_row_by_the_next_link() -> None:
    # Rewriting a row and its own hash breaks the link from the following row.
    records = _chain(5)
    forged = msgspec.structs.replace(records[1], payload=b'{"n":99}')
    forged = msgspec.structs.replace(forged, hash=event_hash(
        forged.prev_hash, forged.position, forged.event_id, forged.tenant,
        forged.event_type, forged.stored, forged.payload))
    records[1] = forged
    assert verify_chain(records) == 3


def test_verify_chain_names_a_missing_position() -> None:
    records = _chain(5)
    del records[3]
    assert verify_chain(records) == 4


def test_verify_chain_rejects_a_wrong_start() -> None:
    records = _chain(3)
    assert verify_chain(records[1:]) == 1


def test_verify_chain_hashes_the_stored_texts_it_is_given() -> None:
    """The relay hands the texts it formatted for its frames; the check
    hashes every record with them, so a text that is not the record's
    stored time breaks the chain there, and a missing text is an error."""
    records = _chain(4)
    texts = stored_texts_of(records)
    assert verify_chain(records, stored_texts=texts) is None
    assert verify_chain(records[1:], prev_position=1, prev_hash=records[0].hash, stored_texts=texts[1:]) is None
    shifted = texts[:2] + [format_stored(records[2].stored + timedelta(microseconds=1))] + texts[3:]
    assert verify_chain(records, stored_texts=shifted) == 3
    tampered = list(records)
    tampered[1] = msgspec.structs.replace(records[1], payload=b'{"n":99}')
    assert verify_chain(tampered, stored_texts=texts) == 2
    with pytest.raises(ValueError):
        verify_chain(records, stored_texts=texts[:3])


from hypothesis import given, strategies as st  # noqa: E402


@given(
    st.datetimes(
        min_value=datetime(1000, 1, 2), max_value=datetime(9999, 12, 30),
        timezones=st.sampled_from([timezone.utc, timezone(timedelta(hours=7)), timezone(timedelta(hours=-5, minutes=-30))]),
    )
)
def test_format_stored_is_iso_8601_utc_with_microseconds(moment):
    text = format_stored(moment)
    assert text == moment.astimezone(timezone.utc).isoformat(timespec="microseconds")[:-6] + "Z"
    assert datetime.fromisoformat(text.replace("Z", "+00:00")) == moment


def test_event_hash_known_answers() -> None:
    """The encoding is a contract with everyone who verifies the chain: these never change."""
    moment = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
    assert event_hash(GENESIS_HASH, 1, uuid.UUID(int=1), "default", "statement", moment, b'{"id":"x"}').hex() == (
        "2219368e897e3137e3721ba422966919a07341b0c454b429eded87721f9c4e8a"
    )
    assert event_hash(
        b"\x07" * 32, 2**40 + 3, uuid.UUID("0f8fad5b-d9cb-469f-a165-70867728950e"), "tenant é", "document",
        moment.replace(microsecond=123456), b"",
    ).hex() == "e3787390971dfc6000a49d5d4f195b0bf83d0745c1675bd649b40ba971f314ac"


def test_stored_formatter_writes_what_format_stored_writes() -> None:
    # Runs within a second, across seconds, backwards, and in other zones
    # (one whose offset has a fraction of a second) all match format_stored.
    base = datetime(2024, 12, 31, 23, 59, 58, 999_990, tzinfo=timezone.utc)
    moments = [base + timedelta(microseconds=i) for i in range(0, 2_000_030, 7)]
    moments += [base, base + timedelta(days=400), base - timedelta(seconds=1), base]
    moments += [m.astimezone(timezone(timedelta(hours=-3, microseconds=5))) for m in moments[::1000]]
    moments += [base + timedelta(microseconds=15), datetime.max.replace(tzinfo=timezone.utc)]
    text = StoredFormatter()
    assert [text(m) for m in moments] == [format_stored(m) for m in moments]
    records = [EventRecord(1, uuid.UUID(int=1), "t", "statement", None, m, b"{}", GENESIS_HASH, GENESIS_HASH)
               for m in moments]
    assert stored_texts_of(records) == [format_stored(m) for m in moments]


@pytest.mark.parametrize("prev_hash", [b"", b"\x07" * 31, b"\x07" * 32, b"\x07" * 33], ids=["0", "31", "32", "33"])
def test_event_hash_is_the_length_prefixed_encoding_whatever_the_lengths(prev_hash: bytes) -> None:
    # The hasher packs the fixed-size fields of every event (a 32-byte
    # previous hash, a 16-byte id) in one go; any other length is encoded
    # field by field, to the same rule.
    def field(data: bytes) -> bytes:
        return struct.pack(">Q", len(data)) + data

    moment = datetime(2024, 5, 1, 12, 0, 0, 5, tzinfo=timezone.utc)
    event_id = uuid.UUID(int=9)
    expected = hashlib.sha256(b"".join((
        HASH_DOMAIN, field(prev_hash), field(struct.pack(">Q", 77)), field(event_id.bytes), field("té".encode()),
        field(b"statement"), field(format_stored(moment).encode()), field(b'{"a":1}'),
    ))).digest()
    assert event_hash(prev_hash, 77, event_id, "té", "statement", moment, b'{"a":1}') == expected


def test_verify_chain_hashes_each_event_with_its_own_tenant_and_type() -> None:
    # verify_chain looks the hasher up again only where tenant or type
    # change: a run that alternates them still holds, and a row given
    # another tenant does not.
    records, prev = [], GENESIS_HASH
    for position in range(1, 7):
        tenant, kind = ("t", "statement") if position % 3 else ("u", "document")
        stored = STORED + timedelta(microseconds=position)
        payload = finalize_statement({"n": position}, stored)
        digest = event_hash(prev, position, uuid.UUID(int=position), tenant, kind, stored, payload)
        records.append(EventRecord(position, uuid.UUID(int=position), tenant, kind, None, stored, payload, prev, digest))
        prev = digest
    assert verify_chain(records) is None
    moved = msgspec.structs.replace(records[3], tenant="u")
    assert verify_chain(records[:3] + [moved] + records[4:]) == 4
