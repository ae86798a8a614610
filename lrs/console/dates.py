"""Dates and times as the console shows them (pure).

The API gives instants as ISO 8601 (``2026-04-13T10:00:00.000000Z``): one long
token that wraps mid-way on a phone and reads as code.  A page shows the
instant in UTC written the way its language writes dates (vi ``13/04/2026
10:00 UTC``, en ``13 Apr 2026 10:00 UTC``) inside ``<time datetime=...>``,
which keeps the exact value as given; a date (a target's due date) likewise
without the time (vi ``31/12/2025``, en ``31 Dec 2025``).  A value that is not an instant is
shown as given; none is shown as a dash."""

from __future__ import annotations

from datetime import date, datetime, timezone

from markupsafe import Markup, escape

__all__ = ["MONTHS_EN", "day", "day_text", "instant_text", "when", "when_text"]

MONTHS_EN = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _instant(value: datetime | str) -> datetime | None:
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            return None
    if moment.tzinfo is None:  # the database's and the API's instants are UTC
        moment = moment.replace(tzinfo=timezone.utc)
    try:
        return moment.astimezone(timezone.utc)
    except OverflowError:  # an instant whose UTC falls outside years 1-9999 (a Statement may state one)
        return None


def when_text(moment: datetime, language: str) -> str:
    """``moment`` (aware) in UTC as ``language`` writes it, to the minute."""
    moment = moment.astimezone(timezone.utc)
    if language == "vi":
        return f"{moment:%d/%m/%Y %H:%M} UTC"
    return f"{moment.day} {MONTHS_EN[moment.month - 1]} {moment.year} {moment:%H:%M} UTC"


def instant_text(value: str, language: str) -> str:
    """``value`` (an instant as the API gives it) as ``language`` writes it; a
    value that is not an instant as given (a report's heading, plain text)."""
    moment = _instant(value) if value else None
    return value if moment is None else when_text(moment, language)


def day_text(value: date, language: str) -> str:
    """A calendar date (a target's due date) as ``language`` writes it."""
    if language == "vi":
        return f"{value:%d/%m/%Y}"
    return f"{value.day} {MONTHS_EN[value.month - 1]} {value.year}"


def day(value: str | None, language: str) -> Markup:
    """``value`` (an ISO 8601 date, as the API gives a due date) as a
    ``<time>`` element for a page in ``language``; anything else as given."""
    if not value:
        return Markup("–")
    try:
        parsed = date.fromisoformat(value)
    except ValueError:
        return escape(value)
    return Markup('<time datetime="{}">{}</time>').format(value, day_text(parsed, language))


def when(value: datetime | str | None, language: str) -> Markup:
    """``value`` as a ``<time>`` element for a page in ``language``."""
    if value is None or value == "":
        return Markup("–")
    moment = _instant(value)
    if moment is None:
        return escape(value)
    exact = value.isoformat() if isinstance(value, datetime) else value
    return Markup('<time datetime="{}">{}</time>').format(exact, when_text(moment, language))
