"""Request ids made without a system call, and the consistent-through header's
text remembered between commits: same answers as the per-request forms."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from lrs.eventlog import format_stored
from lrs.http.middleware import RequestIds, _StoredText


def test_request_ids_are_32_hex_digits_and_unique() -> None:
    ids = RequestIds()
    made = [ids() for _ in range(10_000)]
    assert all(re.fullmatch(r"[0-9a-f]{32}", one) for one in made)
    assert len(set(made)) == len(made)


def test_a_reseeded_maker_shares_no_ids_with_the_old_one() -> None:
    ids = RequestIds()
    before = {ids() for _ in range(100)}
    ids.reseed()  # as a forked child does
    after = {ids() for _ in range(100)}
    assert not before & after
    assert len({one[:16] for one in before | after}) == 2  # one prefix each


def test_the_remembered_text_is_format_stored_of_each_moment() -> None:
    text = _StoredText()
    start = datetime(2026, 12, 6, 10, 0, 0, 123456, tzinfo=timezone.utc)
    plus7 = timezone(timedelta(hours=7))
    for moment in (start, start, start + timedelta(microseconds=1), start.astimezone(plus7),
                   start + timedelta(seconds=5), start):
        assert text(moment) == format_stored(moment)
