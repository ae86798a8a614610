"""A replay formats each event's ``stored`` from the 8 bytes PostgreSQL's
timestamptz_send gives (lrs.eventlog.stored_texts_of_sent) rather than from
asyncpg's datetime: the text it hashes must be exactly the one ``lrs audit
verify`` hashes (lrs.eventlog.stored_texts_of), for any run of times."""

from __future__ import annotations

import struct
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest
from hypothesis import given, settings, strategies as st

from lrs.eventlog import POSTGRES_EPOCH, stored_at, stored_texts_of, stored_texts_of_sent

UTC = timezone.utc
MICROSECOND = timedelta(microseconds=1)
FIRST = datetime.min.replace(tzinfo=UTC)
LAST = datetime.max.replace(tzinfo=UTC)


def sent(moment: datetime) -> bytes:
    return struct.pack(">q", (moment - POSTGRES_EPOCH) // MICROSECOND)


def as_audit_verify_formats(moments: list[datetime]) -> list[str]:
    return stored_texts_of([SimpleNamespace(stored=m) for m in moments])  # type: ignore[misc]


# Runs as a log holds them: each time a step of a few microseconds to a few
# seconds after the one before (many in one second), from anywhere in the
# range a datetime can hold, before 2000 (negative microseconds) included.
steps = st.one_of(st.integers(0, 1_000), st.integers(0, 3_000_000), st.integers(-2_000_000, 2_000_000))


@st.composite
def runs(draw: st.DrawFn) -> list[datetime]:
    moment = draw(st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31), timezones=st.just(UTC)))
    moments = []
    for step in draw(st.lists(steps, max_size=40)):
        try:
            moment = moment + step * MICROSECOND
        except OverflowError:
            break
        moments.append(moment)
    return moments


@settings(max_examples=500, deadline=None)
@given(runs())
def test_stored_texts_of_sent_bytes_are_the_texts_audit_verify_hashes(moments: list[datetime]) -> None:
    assert stored_texts_of_sent([sent(m) for m in moments]) == as_audit_verify_formats(moments)


def test_the_ends_of_the_range_seconds_and_the_epoch_format_alike() -> None:
    edges = [FIRST, FIRST + MICROSECOND, POSTGRES_EPOCH - MICROSECOND, POSTGRES_EPOCH, POSTGRES_EPOCH + MICROSECOND,
             datetime(2026, 12, 7, 23, 59, 59, 999_999, tzinfo=UTC), datetime(2026, 12, 8, tzinfo=UTC),
             datetime(1999, 12, 31, 23, 59, 59, 500_000, tzinfo=UTC), LAST - MICROSECOND, LAST]
    assert stored_texts_of_sent([sent(m) for m in edges]) == as_audit_verify_formats(edges)
    assert stored_texts_of_sent([]) == []


def test_postgres_infinities_are_the_naive_datetimes_asyncpg_gives_and_refused_alike() -> None:
    assert stored_at(2**63 - 1) == datetime.max and stored_at(-(2**63)) == datetime.min
    for infinity in (2**63 - 1, -(2**63)):
        with pytest.raises(ValueError, match="timezone-aware"):
            stored_texts_of_sent([sent(POSTGRES_EPOCH), struct.pack(">q", infinity)])
