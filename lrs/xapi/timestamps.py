"""xAPI timestamps: which texts name a point in time, and which point (pure).

One decision, :func:`utc_instant`, serves every reader of a timestamp: the
statement validator (``timestamp`` and ``stored`` of a Statement, a
SubStatement's ``timestamp``: :func:`timestamp_problem`), the ``since`` and
``until`` parameters of GET /statements and the document id lists
(:func:`timestamp_parameter`), and the competency rules
(``projections.competency.judgement.normalise_timestamp``), so a timestamp the
LRS stores is one the rules read, to the same instant, and the reverse.

What is a timestamp (Data 4.5: ISO 8601, RFC 3339 recommended):

- an ISO 8601 calendar date and time of day, extended
  (``2024-01-31T12:00:00.250+07:00``) or basic (``20240131T120000,25+0700``)
  format, minutes required in the extended format, seconds optional, a
  fraction after ``.`` or ``,`` with any number of digits (read to the
  microsecond, truncated), ``T``/``Z`` in either case;
- the zone ``Z``, ``±HH``, ``±HHMM`` or ``±HH:MM`` up to 23:59, or none (read
  as UTC); ``-00:00`` is refused (RFC 3339 4.3: it says the offset is unknown);
- a real day (no 2023-02-29), hours 00-23 (no ``24:00``), minutes 00-59,
  seconds 00-60: a leap second ``:60`` is read as the first second after it
  (as ``lrs.ingest.prepare.utc_timestamp`` stores it);
- whose UTC falls in years 0001-9999: a four-digit year is all the LRS writes
  (year 0000 and ``9999-12-31T23:59:59-01:00`` are refused).

Not timestamps here, each refused with a 400: ordinal (``2025-060``) and week
(``2025-W09-6``) dates, expanded years (``+002025``), a date alone, a space
instead of ``T``.

The common form (``YYYY-MM-DDTHH:MM:SS[.fff]`` then ``Z`` or ``±HH:MM``) takes
a fast path: one shape match and the C parser of ``datetime.fromisoformat``;
anything else is read field by field.
"""

from __future__ import annotations

import calendar
import re
from datetime import datetime, timedelta, timezone

from lrs.xapi.errors import XapiError

__all__ = [
    "TIMESTAMP_EXPECTED",
    "TIMESTAMP_RULES",
    "COMMON_TIMESTAMP",
    "utc_instant",
    "timestamp_problem",
    "timestamp_parameter",
]

# ISO 8601 combined date and time, extended or basic format, optional zone.
_TS_EXTENDED = (
    r"(?P<y>[0-9]{4})-(?P<mo>[0-9]{2})-(?P<d>[0-9]{2})[Tt]"
    r"(?P<h>[0-9]{2}):(?P<mi>[0-9]{2})(?::(?P<s>[0-9]{2})(?:[.,][0-9]+)?)?"
    r"(?P<z>[Zz]|(?P<sign>[+-])(?P<oh>[0-9]{2})(?::?(?P<om>[0-9]{2}))?)?"
)
_TS_BASIC = (
    r"(?P<y2>[0-9]{4})(?P<mo2>[0-9]{2})(?P<d2>[0-9]{2})[Tt]"
    r"(?P<h2>[0-9]{2})(?:(?P<mi2>[0-9]{2})(?:(?P<s2>[0-9]{2})(?:[.,][0-9]+)?)?)?"
    r"(?P<z2>[Zz]|(?P<sign2>[+-])(?P<oh2>[0-9]{2})(?P<om2>[0-9]{2})?)?"
)
_strip_groups = re.compile(r"\?P<[a-z0-9]+>")
# The grammar without its group names, for lrs.xapi.common's TIMESTAMP_PATTERN
# and the JSON Schemas.
TIMESTAMP_RULES = _strip_groups.sub("", _TS_EXTENDED) + "|" + _strip_groups.sub("", _TS_BASIC)
# The form most clients send (UTC, seconds, an optional fraction): a
# timestamp of the extended rule, matched first by TIMESTAMP_PATTERN.
COMMON_TIMESTAMP = r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?Z"
TIMESTAMP_EXPECTED = "an ISO 8601 timestamp with date and time (e.g. 2024-01-31T12:00:00.000Z)"

_FIELDS = re.compile(f"(?:{_TS_EXTENDED}|{_TS_BASIC})").fullmatch
# The grammar as TIMESTAMP_PATTERN applies it (its common form first).
_GRAMMAR = re.compile(f"(?:{COMMON_TIMESTAMP}|{TIMESTAMP_RULES})").fullmatch
_FROM_ISO = datetime.fromisoformat
_UTC = timezone.utc
_NEGATIVE_ZEROS = ("-00:00", "-0000", "-00")
_EDGE_YEARS = (1, 9999)  # the only local years whose UTC may fall outside 1-9999

_OUTSIDE_YEARS = "Timestamp is outside years 0001-9999 once converted to UTC"
_NEGATIVE_ZERO = "Timestamp time zone offset -00:00 is not allowed (use Z or +00:00)"


def _read(text: str) -> datetime | str:
    """The point in time ``text`` names (naive: UTC), or why it names none."""
    if _GRAMMAR(text) is None:
        return f"Expected {TIMESTAMP_EXPECTED}"
    return _read_grammatical(text)


def _read_grammatical(text: str) -> datetime | str:
    """:func:`_read` of a text of the grammar (TIMESTAMP_PATTERN); naive when
    ``text`` has no zone (read as UTC by :func:`_utc`)."""
    # datetime.fromisoformat (C) reads every text of the grammar that names
    # an instant but three: a leap second, an offset's minutes past 59 (it
    # takes +05:99 as +06:39) and -00:00; it refuses what names none.  Those
    # it refuses or may misread are read field by field, which says why.
    try:
        moment = _FROM_ISO(text)
    except ValueError:
        return _read_fields(text)
    if text[-1] != "Z" and (text[-2] > "5" or text.endswith(_NEGATIVE_ZEROS)):
        return _read_fields(text)
    if text[0] in "09" and moment.year in _EDGE_YEARS and moment.tzinfo is not None:
        try:
            moment.astimezone(_UTC)
        except OverflowError:
            return _OUTSIDE_YEARS
    return moment


def _read_fields(text: str) -> datetime | str:
    m = _FIELDS(text)
    if m is None:
        return f"Expected {TIMESTAMP_EXPECTED}"
    g = m.groupdict()
    basic = g["y"] is None
    year = int(g["y2"] if basic else g["y"])
    month = int(g["mo2"] if basic else g["mo"])
    day = int(g["d2"] if basic else g["d"])
    hour = int(g["h2"] if basic else g["h"])
    minute = int((g["mi2"] if basic else g["mi"]) or 0)
    second = int((g["s2"] if basic else g["s"]) or 0)
    # The fraction's digits: between the seconds' "." or "," and the zone.
    seconds_end, zone_start = m.end("s2" if basic else "s"), m.start("z2" if basic else "z")
    fraction = text[seconds_end + 1:zone_start if zone_start >= 0 else len(text)] if seconds_end >= 0 else ""
    sign = g["sign2"] if basic else g["sign"]
    off_h = int((g["oh2"] if basic else g["oh"]) or 0)
    off_m = int((g["om2"] if basic else g["om"]) or 0)
    if not 1 <= month <= 12:
        return f"Timestamp month {month:02d} does not exist"
    if not 1 <= day <= calendar.monthrange(year, month)[1]:
        return f"Timestamp day {day:02d} does not exist in {year:04d}-{month:02d}"
    if hour > 23 or minute > 59 or second > 60:
        return "Timestamp time of day is out of range"
    if off_h > 23 or off_m > 59:
        return "Timestamp time zone offset is out of range"
    if sign == "-" and off_h == 0 and off_m == 0:
        return _NEGATIVE_ZERO
    offset = timedelta(hours=off_h, minutes=off_m)
    try:
        # Seconds are added, not set, so a leap second (:60) rolls over.
        moment = datetime(year, month, day, hour, minute, tzinfo=_UTC)
        moment += timedelta(seconds=second, microseconds=int(fraction[:6].ljust(6, "0")))
        moment = moment + offset if sign == "-" else moment - offset
    except (ValueError, OverflowError):  # year 0000, or beyond 9999 in UTC
        return _OUTSIDE_YEARS
    return moment


def utc_instant(text: str) -> datetime:
    """The UTC point in time the xAPI timestamp ``text`` names (aware, to the
    microsecond); raises ValueError saying why (and what it was given) when
    it names none."""
    moment = _read(text)
    if type(moment) is str:
        raise ValueError(f"{moment}, got {text!r}")
    return _utc(moment)  # type: ignore[arg-type]


def timestamp_problem(text: str) -> str | None:
    """Why ``text``, a text of the grammar (lrs.xapi.common.TIMESTAMP_PATTERN,
    which msgspec checks first on every Timestamp field of a Statement), is
    not an xAPI timestamp (:func:`utc_instant`), or None."""
    moment = _read_grammatical(text)
    return moment if type(moment) is str else None


def timestamp_parameter(text: str, name: str) -> datetime:
    """A query parameter's timestamp (``since``, ``until``) as a UTC instant;
    ``XapiError(400)`` naming the parameter when it is not one (Data 2.2.s4.b4:
    parameters are validated as the same values in Statements are)."""
    # A "+01:00" offset sent unescaped in a query string arrives as " 01:00".
    candidate = text.replace(" ", "+")
    moment = _read(candidate)
    if type(moment) is str:
        raise XapiError(400, f"{name} must be an ISO 8601 timestamp, got {text!r}: {moment}", name)
    return _utc(moment)  # type: ignore[arg-type]


def _utc(moment: datetime) -> datetime:
    """``moment`` in UTC; a naive one (a timestamp without zone) is UTC."""
    zone = moment.tzinfo
    if zone is _UTC:
        return moment
    return moment.replace(tzinfo=_UTC) if zone is None else moment.astimezone(_UTC)
