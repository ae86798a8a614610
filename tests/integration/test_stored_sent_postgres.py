"""The 8 bytes real PostgreSQL's timestamptz_send gives for a time (as a
replay reads ``stored``, projections.replay.SELECT_LOG_PAGE) format to the
text that asyncpg's datetime of the same value formats to (as ``lrs audit
verify`` reads it): the hash input is the same either way."""

from __future__ import annotations

from types import SimpleNamespace

import asyncpg
import pytest

from lrs.eventlog import stored_at, stored_texts_of, stored_texts_of_sent

TIMES = """
SELECT t, timestamptz_send(t) FROM unnest(ARRAY[
  '2026-12-07 23:59:59.999999+00', '2026-12-08 00:00:00+00', '2026-12-08 00:00:00.000001+00',
  '2026-12-08 00:00:00.5+00', '2026-12-08 02:00:00.5+02', '1999-12-31 23:59:59.999999+00',
  '2000-01-01 00:00:00+00', '1970-01-01 00:00:00+00', '0001-01-01 00:00:00+00',
  '9999-12-31 23:59:59.999999+00'
]::timestamptz[]) WITH ORDINALITY AS times(t, n) ORDER BY n
"""


async def test_timestamptz_send_formats_as_asyncpgs_datetime_does(pool: asyncpg.Pool) -> None:
    rows = await pool.fetch(TIMES)
    from_datetimes = stored_texts_of([SimpleNamespace(stored=row[0]) for row in rows])  # type: ignore[misc]
    assert stored_texts_of_sent([row[1] for row in rows]) == from_datetimes
    assert from_datetimes[:2] == ["2026-12-07T23:59:59.999999Z", "2026-12-08T00:00:00.000000Z"]


async def test_infinities_are_refused_by_both_readings(pool: asyncpg.Pool) -> None:
    for infinity in ("infinity", "-infinity"):
        moment, sent = await pool.fetchrow("SELECT t, timestamptz_send(t) FROM (SELECT $1::text::timestamptz AS t) AS one",
                                           infinity)
        assert stored_at((int.from_bytes(sent, "big", signed=True))) == moment
        for reading in (lambda: stored_texts_of([SimpleNamespace(stored=moment)]),  # type: ignore[list-item]
                        lambda: stored_texts_of_sent([sent])):
            with pytest.raises(ValueError, match="timezone-aware"):
                reading()


async def test_stored_as_now_writes_it_formats_alike(pool: asyncpg.Pool) -> None:
    rows = await pool.fetch(
        "SELECT t, timestamptz_send(t) FROM (SELECT clock_timestamp() + n * interval '1 microsecond' AS t"
        " FROM generate_series(1, 2000) AS n) AS times ORDER BY t")
    assert stored_texts_of_sent([row[1] for row in rows]) == stored_texts_of(
        [SimpleNamespace(stored=row[0]) for row in rows])  # type: ignore[misc]
