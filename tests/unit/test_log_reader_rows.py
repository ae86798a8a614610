"""The log reader turns a row of SELECT_AFTER into an EventRecord by position,
so the query's columns must stay in EventRecord's field order."""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timezone

from asyncpg.protocol.protocol import _create_record

from lrs.eventlog import EventRecord
from lrs.payload_codec import store_payload
from lrs.store.log_reader import SELECT_AFTER, _record


def _select_columns() -> list[str]:
    match = re.search(r"SELECT\s+(.*?)\s+FROM", SELECT_AFTER, re.S)
    assert match is not None
    return [name.strip() for name in match.group(1).split(",")]


def test_the_query_selects_the_record_fields_in_their_order() -> None:
    assert _select_columns() == list(EventRecord.__struct_fields__)


def test_a_row_becomes_the_record_of_its_columns_with_the_payload_opened() -> None:
    canonical = b'{"id":"x","verb":{"id":"http://example.com/v"}}'
    values = {
        "position": 7,
        "event_id": uuid.uuid4(),
        "tenant": "default",
        "event_type": "statement.stored",
        "statement_id": uuid.uuid4(),
        "stored": datetime(2026, 12, 7, 11, 0, tzinfo=timezone.utc),
        "payload": store_payload(canonical),
        "prev_hash": b"\1" * 32,
        "hash": b"\2" * 32,
    }
    columns = _select_columns()
    row = _create_record({name: i for i, name in enumerate(columns)}, tuple(values[name] for name in columns))
    record = _record(row)
    assert record == EventRecord(**{**values, "payload": canonical})
