"""The relay's event frames are the frames of the contract's messages, byte for byte."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lrs.event_contract import event_message
from lrs.eventlog import EventRecord, format_stored, stored_texts_of
from lrs.nats.bus import hpub_frame
from lrs.nats.event_frames import EventBatch

STORED = datetime(2026, 3, 1, 12, 0, 59, 999998, tzinfo=timezone.utc)


def chain(tenants: list[str], payloads: list[bytes], event_type: str = "statement", linked: bool = True) -> list[EventRecord]:
    records, prev = [], b"\x01" * 32
    for i, (tenant, payload) in enumerate(zip(tenants, payloads)):
        digest = uuid.uuid4().bytes * 2
        records.append(EventRecord(100 + i, uuid.uuid4(), tenant, event_type, None,
                                   STORED + timedelta(microseconds=i), payload, prev, digest))
        prev = digest if linked else uuid.uuid4().bytes * 2
    return records


def expected(records: list[EventRecord], inline_max: int) -> list[bytes]:
    return [hpub_frame(event_message(r, format_stored, inline_max)) for r in records]


@pytest.mark.parametrize("linked", [True, False])
@pytest.mark.parametrize("tenant", ["default", "a.b c", " tenant é ", "x\r\ny", "t>*%"])
def test_frames_are_hpub_frames_of_the_messages(tenant: str, linked: bool) -> None:
    records = chain([tenant, tenant, "other"], [b'{"id":"x"}', b"{" + b"y" * 40 + b"}", b"{}"], linked=linked)
    for event_type in ("statement", "roster"):
        records = [EventRecord(**{**{f: getattr(r, f) for f in r.__struct_fields__}, "event_type": event_type})
                   for r in records]
        batch = EventBatch(records, stored_texts_of(records), 20)  # the second payload goes by reference
        assert batch.frames() == expected(records, 20)
        assert batch.wire() == b"".join(expected(records, 20))
        assert batch.max_data_length() == 10


def test_the_batch_is_the_sequence_of_the_messages() -> None:
    records = chain(["default"] * 4, [b'{"n":%d}' % i for i in range(4)])
    batch = EventBatch(records, stored_texts_of(records), 1000)
    messages = [event_message(r) for r in records]
    assert len(batch) == 4 and batch[-1] == messages[-1] and batch[1:3] == messages[1:3]
    assert list(batch) == messages
    assert batch.head(3).frames() == expected(records[:3], 1000)
    assert EventBatch([], [], 1000).frames() == [] == list(EventBatch([], [], 1).wire()) and EventBatch([], [], 1).max_data_length() == 0


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.text(max_size=12), st.binary(max_size=40)), min_size=1, max_size=5))
def test_any_tenant_and_payload(events: list[tuple[str, bytes]]) -> None:
    records = chain([t for t, _ in events], [p for _, p in events])
    batch = EventBatch(records, stored_texts_of(records), 30)
    assert batch.frames() == expected(records, 30) and batch.wire() == b"".join(expected(records, 30))
