"""Retry-After -> how long a client of the LRS waits (pure)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest

from connectors.framework.retry_after import (
    JITTER_FRACTION,
    MAX_RETRY_AFTER_S,
    parse_retry_after,
    retry_after_delay,
)

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    "value, seconds",
    [
        ("3", 3.0),
        (" 120 ", 120.0),
        ("0", 0.0),
        ("Wed, 01 May 2024 12:00:30 GMT", 30.0),  # IMF-fixdate
        ("Wednesday, 01-May-24 12:01:00 GMT", 60.0),  # obsolete RFC 850 date
        ("Wed May  1 12:00:05 2024", 5.0),  # obsolete asctime date, GMT though it says no zone
        ("Wed, 01 May 2024 11:00:00 GMT", 0.0),  # a date already past: come back now
    ],
)
def test_retry_after_reads_delta_seconds_and_every_http_date_format(value, seconds):
    assert parse_retry_after(value, NOW.timestamp()) == pytest.approx(seconds)


@pytest.mark.parametrize("value", [None, "", "soon", "-5", "1.5", "nan", "inf", "1e3", "Wed, 99 Foo 2024"])
def test_retry_after_that_is_not_delta_seconds_or_a_date_is_unreadable(value):
    assert parse_retry_after(value, NOW.timestamp()) is None


@pytest.mark.parametrize("status", [429, 503])
def test_shedding_and_throttling_wait_as_asked_plus_jitter(status):
    assert retry_after_delay(status, "10", NOW.timestamp(), draw=0.0) == 10.0
    assert retry_after_delay(status, "10", NOW.timestamp(), draw=0.5) == pytest.approx(10.0 * (1 + JITTER_FRACTION / 2))
    later = format_datetime(NOW + timedelta(seconds=20), usegmt=True)
    assert retry_after_delay(status, later, NOW.timestamp(), draw=0.0) == pytest.approx(20.0)


def test_the_wait_is_capped_before_jitter_so_a_far_date_parks_no_client():
    far = format_datetime(NOW + timedelta(days=3), usegmt=True)
    assert retry_after_delay(503, far, NOW.timestamp(), draw=0.0) == MAX_RETRY_AFTER_S
    assert retry_after_delay(503, "86400", NOW.timestamp(), cap=60.0, draw=0.0) == 60.0
    assert retry_after_delay(503, "86400", NOW.timestamp(), cap=60.0, draw=0.999) <= 60.0 * (1 + JITTER_FRACTION)


@pytest.mark.parametrize(
    "status, value",
    [(503, None), (503, "soon"), (429, None), (500, "5"), (502, "5"), (200, "5"), (301, "5")],
)
def test_no_wait_is_asked_without_a_readable_header_on_429_or_503(status, value):
    assert retry_after_delay(status, value, NOW.timestamp(), draw=0.5) is None
