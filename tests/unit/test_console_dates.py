"""The console's dates: formatted for the page's language, the exact value kept."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from lrs.console import i18n
from lrs.console.dates import day, when


def test_an_instant_is_written_as_the_language_writes_dates_and_kept_exact() -> None:
    stored = "2026-04-13T10:00:00.000000Z"
    assert when(stored, "vi") == f'<time datetime="{stored}">13/04/2026 10:00 UTC</time>'
    assert when(stored, "en") == f'<time datetime="{stored}">13 Apr 2026 10:00 UTC</time>'


def test_an_instant_with_an_offset_or_from_the_database_is_shown_in_utc() -> None:
    assert "13 Apr 2026 10:00 UTC" in when("2026-04-13T17:00:00+07:00", "en")
    hanoi = datetime(2026, 1, 2, 7, 5, tzinfo=timezone(timedelta(hours=7)))
    assert when(hanoi, "vi") == '<time datetime="2026-01-02T07:05:00+07:00">02/01/2026 00:05 UTC</time>'
    assert when(datetime(2026, 1, 2, 0, 5), "en").endswith(">2 Jan 2026 00:05 UTC</time>")  # naive: UTC


def test_what_is_not_an_instant_is_shown_as_given_and_escaped() -> None:
    assert when(None, "vi") == "–" and when("", "en") == "–"
    assert when("soon <b>", "en") == "soon &lt;b&gt;"


def test_a_message_takes_a_time_without_escaping_it_and_escapes_the_rest() -> None:
    t = i18n.translator("en")
    text = t("verify_when", at=when("2026-04-13T10:00:00Z", "en"), head="<1>")
    assert '<time datetime="2026-04-13T10:00:00Z">13 Apr 2026 10:00 UTC</time>' in text and "&lt;1&gt;" in text


def test_an_instant_whose_utc_falls_outside_years_1_to_9999_is_shown_as_given() -> None:
    for value in ("9999-12-31T23:59:59-01:00", "0001-01-01T00:30:00+01:00"):
        assert when(value, "en") == value and when(value, "vi") == value


def test_a_due_date_is_written_as_the_language_writes_dates_and_kept_exact() -> None:
    assert day("2025-12-31", "vi") == '<time datetime="2025-12-31">31/12/2025</time>'
    assert day("2025-12-31", "en") == '<time datetime="2025-12-31">31 Dec 2025</time>'
    assert day("end of <year>", "vi") == "end of &lt;year&gt;" and day(None, "en") == "–" and day("", "vi") == "–"
