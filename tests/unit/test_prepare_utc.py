"""Timestamps are stored in UTC, for 2.0 and 1.0.3 requests alike."""

from __future__ import annotations

import uuid
from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lrs.ingest.prepare import prepare_statements, utc_timestamp
from lrs.xapi.errors import XapiError

AUTHORITY = {"objectType": "Agent", "account": {"homePage": "http://lrs.example", "name": "k"}}


def _statement(timestamp: str, sub_timestamp: str | None = None) -> dict:
    body = {
        "actor": {"mbox": "mailto:a@example.org"},
        "verb": {"id": "http://adlnet.gov/expapi/verbs/completed"},
        "object": {"id": "http://example.org/a"},
        "timestamp": timestamp,
    }
    if sub_timestamp is not None:
        body["object"] = {
            "objectType": "SubStatement",
            "actor": {"mbox": "mailto:b@example.org"},
            "verb": {"id": "http://adlnet.gov/expapi/verbs/attempted"},
            "object": {"id": "http://example.org/b"},
            "timestamp": sub_timestamp,
        }
    return body


def _prepare(statements, version, **kwargs):
    return prepare_statements(statements, version=version, authority=AUTHORITY, new_id=uuid.uuid4, **kwargs)


@pytest.mark.parametrize("sent, stored", [
    ("2024-01-31T14:00:00.25+02:00", "2024-01-31T12:00:00.25Z"),
    ("2024-01-31T12:00:00Z", "2024-01-31T12:00:00Z"),
    ("2024-01-31t12:00:00z", "2024-01-31T12:00:00Z"),
    ("2024-01-31T00:30:00-05", "2024-01-31T05:30:00Z"),
    ("2024-01-01T01:00:00+05:30", "2023-12-31T19:30:00Z"),
    ("20240131T140000,5+0200", "2024-01-31T12:00:00.5Z"),
    ("2024-01-31T12:00", "2024-01-31T12:00:00Z"),  # no zone: read as UTC
    ("2024-02-28T23:00:00.123456789-02:00", "2024-02-29T01:00:00.123456789Z"),  # digits kept, leap day
    ("2016-12-31T23:59:60Z", "2017-01-01T00:00:00Z"),
    ("9999-12-31T23:00:00-05:00", "9999-12-31T23:00:00-05:00"),  # beyond year 9999: unchanged
])
def test_utc_timestamp(sent, stored):
    assert utc_timestamp(sent) == stored


@given(st.datetimes(min_value=datetime(1000, 1, 2), max_value=datetime(9998, 12, 30)),
       st.integers(min_value=-23 * 60 - 59, max_value=23 * 60 + 59))
def test_utc_timestamp_is_the_same_instant(moment, offset_minutes):
    sign = "+" if offset_minutes >= 0 else "-"
    hours, minutes = divmod(abs(offset_minutes), 60)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{moment.microsecond:06d}{sign}{hours:02d}:{minutes:02d}"
    normalised = utc_timestamp(text)
    assert normalised.endswith("Z")
    assert datetime.fromisoformat(normalised) == datetime.fromisoformat(text)


def test_2_0_statement_and_substatement_timestamps_become_utc():
    original = _statement("2024-01-31T14:00:00.250+02:00", sub_timestamp="2024-01-31T09:00:00-03:00")
    [prepared] = _prepare([original], "2.0.0")
    assert prepared.body["timestamp"] == "2024-01-31T12:00:00.250Z"
    assert prepared.body["object"]["timestamp"] == "2024-01-31T12:00:00Z"
    assert prepared.has_timestamp
    # The input is not modified.
    assert original["timestamp"] == "2024-01-31T14:00:00.250+02:00"
    assert original["object"]["timestamp"] == "2024-01-31T09:00:00-03:00"


def test_1_0_3_timestamps_become_utc_too():
    # Data 4.5: the LRS SHOULD* return the Timestamp in UTC.
    [prepared] = _prepare([_statement("2024-01-31T14:00:00.250+02:00", "2024-01-31T09:00:00-03:00")], "1.0.3")
    assert prepared.body["timestamp"] == "2024-01-31T12:00:00.250Z"
    assert prepared.body["object"]["timestamp"] == "2024-01-31T12:00:00Z"


def test_batch_limit_is_413_and_counts_statements():
    statements = [_statement("2024-01-31T12:00:00Z") for _ in range(3)]
    assert len(_prepare(statements, "1.0.3", max_statements=3)) == 3
    with pytest.raises(XapiError) as caught:
        _prepare(statements + [_statement("2024-01-31T12:00:00Z")], "1.0.3", max_statements=3)
    assert caught.value.status == 413 and "at most 3" in caught.value.message
    assert caught.value.path == "$"


@given(st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)), st.integers(0, 6))
def test_utc_text_is_returned_as_is(moment, digits):
    text = moment.strftime("%Y-%m-%dT%H:%M:%S") + (f".{moment.microsecond:06d}"[: digits + 1] if digits else "") + "Z"
    assert utc_timestamp(text) == text
