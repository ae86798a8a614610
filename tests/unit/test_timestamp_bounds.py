"""What ingest takes as a timestamp, the competency rules read, to the same
instant, and what the rules cannot read, ingest refuses with a 400 naming
the JSON path (or the parameter): one decision, lrs.xapi.timestamps.

Every test here uses only the public entry points (the validator, the
statement preparation, the GET parameters' parsers and the rules' reader).
"""

from __future__ import annotations

import calendar
import json
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from lrs.documents.params import parse_since
from lrs.ingest.prepare import prepare_statements
from lrs.ingest.query import parse_statement_query
from lrs.xapi.errors import XapiError
from lrs.xapi.statement import parse_statements
from projections.competency.policy import normalise_timestamp

AUTHORITY = {"objectType": "Agent", "account": {"homePage": "http://lrs.example", "name": "k"}}
SUB = {"objectType": "SubStatement", "actor": {"mbox": "mailto:b@example.org"},
       "verb": {"id": "http://adlnet.gov/expapi/verbs/attempted"}, "object": {"id": "http://example.org/b"}}

# Forms the rules cannot read (or that are not ISO 8601 calendar date-times): each a 400.
REFUSED = [
    "2025-03-01T24:00:00Z",  # hour 24 (RFC 3339: 00-23)
    "0000-03-01T08:00:00Z",  # year 0000
    "2025-060T08:00:00Z",  # ordinal date
    "+002025-03-01T08:00:00Z",  # expanded year
    "9999-12-31T23:59:59-01:00",  # UTC in year 10000
    "0001-01-01T00:30:00+01:00",  # UTC in year 0
    "9999-12-31T23:59:60Z",  # a leap second that rolls over into year 10000
    "2025-W09-6T08:00:00Z",  # week date
    "2025-03-01T08:00:00+24:00",  # offset beyond 23:59
    "2025-03-01T08:00:00+05:60",  # offset minutes beyond 59 (fromisoformat reads +06:00)
    "2025-03-01T08:00:00-00:00",  # RFC 3339 4.3: unknown offset
    "2025-03-01",  # a date alone
    "2025-03-01 08:00:00Z",  # a space for T
]
# Accepted, stored in UTC, read by the rules to this instant.
ACCEPTED = [
    ("2016-12-31T23:59:60Z", "2017-01-01T00:00:00.000000Z"),  # leap second: the next second
    ("2025-03-01T08:00:00.1234567Z", "2025-03-01T08:00:00.123456Z"),  # beyond microseconds: truncated
    ("2025-03-01t15:00:00z", "2025-03-01T15:00:00.000000Z"),  # lowercase t and z
    ("2025-03-01T08:00:00", "2025-03-01T08:00:00.000000Z"),  # no offset: UTC
    ("20250301T150000,5+0700", "2025-03-01T08:00:00.500000Z"),  # basic format, comma
    ("2025-03-01T08:00+01", "2025-03-01T07:00:00.000000Z"),  # no seconds, hour-only offset
    ("0001-01-01T00:30:00-01:00", "0001-01-01T01:30:00.000000Z"),  # the edges of years 1-9999
    ("9999-12-31T23:59:59.999999Z", "9999-12-31T23:59:59.999999Z"),
]


def _statement(timestamp: str | None = None, **fields: object) -> dict:
    body: dict = {"actor": {"mbox": "mailto:a@example.org"}, "verb": {"id": "http://adlnet.gov/expapi/verbs/completed"},
                  "object": {"id": "http://example.org/a"}, **fields}
    if timestamp is not None:
        body["timestamp"] = timestamp
    return body


def _refusal(body: object, version: str = "1.0.3") -> XapiError:
    with pytest.raises(XapiError) as caught:
        parse_statements(json.dumps(body), version)
    assert caught.value.status == 400
    return caught.value


def _stored(timestamp: str, version: str = "2.0.0") -> str:
    """The timestamp as ingest stores it (validated, then prepared)."""
    [parsed] = parse_statements(json.dumps(_statement(timestamp)), version)
    [prepared] = prepare_statements([parsed], version=version, authority=AUTHORITY, new_id=uuid.uuid4)
    return prepared.body["timestamp"]


@pytest.mark.parametrize("value", REFUSED)
@pytest.mark.parametrize("version", ["1.0.3", "2.0.0"])
def test_a_timestamp_the_rules_cannot_read_is_a_400_naming_its_path(value: str, version: str) -> None:
    assert _refusal(_statement(value), version).path == "$.timestamp"
    batch = [_statement("2025-03-01T08:00:00Z"), _statement(), _statement(value)]
    assert _refusal(batch, version).path == "$[2].timestamp"
    assert _refusal([_statement(), _statement(object={**SUB, "timestamp": value})], version).path == "$[1].object.timestamp"
    assert _refusal(_statement(stored=value), version).path == "$.stored"
    with pytest.raises(ValueError):
        normalise_timestamp(value)


@pytest.mark.parametrize("name", ["since", "until"])
@pytest.mark.parametrize("value", REFUSED)
def test_a_since_or_until_the_rules_cannot_read_is_a_400_naming_the_parameter(name: str, value: str) -> None:
    with pytest.raises(XapiError) as caught:
        parse_statement_query({name: value}, default_limit=10, max_limit=100)
    assert caught.value.status == 400 and caught.value.path == name and name in caught.value.message
    with pytest.raises(XapiError) as caught:
        parse_since(value)
    assert caught.value.status == 400 and caught.value.path == "since"


@pytest.mark.parametrize(("sent", "read"), ACCEPTED)
def test_an_accepted_form_is_stored_in_utc_and_read_by_the_rules_to_the_same_instant(sent: str, read: str) -> None:
    stored = _stored(sent)
    assert stored.endswith("Z")
    assert normalise_timestamp(stored) == read
    assert normalise_timestamp(sent) == read
    instant = datetime.fromisoformat(read)
    query = parse_statement_query({"since": sent, "until": sent}, default_limit=10, max_limit=100)
    assert query.since == query.until == instant == parse_since(sent)


# --- whatever the validator accepts, the rules read, to the same instant ----------------

_OFFSET_FORMS = ("{s}{h:02d}", "{s}{h:02d}{m:02d}", "{s}{h:02d}:{m:02d}")


@st.composite
def iso_texts(draw: st.DrawFn) -> tuple[str, datetime | None]:
    """An ISO 8601 date-time text of the LRS's grammar, its fields drawn past
    their ranges too, and the UTC instant it names (None when it names none,
    or one outside years 1-9999), worked out from the fields by hand."""
    year = draw(st.sampled_from([0, 1, 2, 1582, 2024, 2025, 9998, 9999]) | st.integers(0, 9999))
    month, day = draw(st.integers(0, 13)), draw(st.integers(0, 32))
    hour, minute, second = draw(st.integers(0, 25)), draw(st.integers(0, 61)), draw(st.integers(0, 61))
    basic, with_minutes, with_seconds = draw(st.booleans()), draw(st.booleans()), draw(st.booleans())
    with_minutes = with_minutes or not basic or with_seconds  # the extended format has minutes
    fraction = draw(st.text("0123456789", min_size=1, max_size=9)) if with_seconds and draw(st.booleans()) else ""
    separator = draw(st.sampled_from([".", ","]))
    zone_kind = draw(st.sampled_from(["none", "Z", "z", "offset", "offset"]))
    sign, off_h, off_m = draw(st.sampled_from("+-")), draw(st.integers(0, 25)), draw(st.integers(0, 61))
    zone = {"none": "", "Z": "Z", "z": "z"}.get(zone_kind)
    if zone is None:
        form = draw(st.sampled_from(_OFFSET_FORMS[:2] if basic else _OFFSET_FORMS))
        zone = form.format(s=sign, h=off_h, m=off_m)
        off_m = off_m if "{m" in form else 0
    else:
        off_h = off_m = 0
    dash, colon = ("", "") if basic else ("-", ":")
    text = f"{year:04d}{dash}{month:02d}{dash}{day:02d}{draw(st.sampled_from('Tt'))}{hour:02d}"
    text += f"{colon}{minute:02d}" if with_minutes else ""
    text += f"{colon}{second:02d}" if with_seconds else ""
    text += f"{separator}{fraction}" if fraction else ""
    text += zone
    minute, second = (minute if with_minutes else 0), (second if with_seconds else 0)
    valid = (
        1 <= year and 1 <= month <= 12 and 1 <= day <= calendar.monthrange(year, month)[1]
        and hour <= 23 and minute <= 59 and second <= 60 and off_h <= 23 and off_m <= 59
        and not (zone[:1] == "-" and off_h == off_m == 0)
    )
    if not valid:
        return text, None
    east = (1 if zone[:1] == "+" else -1) * (off_h * 3600 + off_m * 60)
    seconds = (datetime(year, month, day) - datetime(1, 1, 1)).total_seconds() + hour * 3600 + minute * 60 + second
    seconds -= east
    microseconds = int(fraction[:6].ljust(6, "0"))
    if not 0 <= seconds < (datetime(9999, 12, 31, 23, 59, 59) - datetime(1, 1, 1)).total_seconds() + 1:
        return text, None
    return text, datetime(1, 1, 1, tzinfo=timezone.utc) + timedelta(seconds=seconds, microseconds=microseconds)


@settings(max_examples=600)
@given(iso_texts(), st.sampled_from(["1.0.3", "2.0.0"]))
@example(("0000-01-01T00:00:00Z", None), "1.0.3")
@example(("9999-12-31T23:59:59-01:00", None), "2.0.0")
@example(("2025-03-01T08:00:00+05:60", None), "1.0.3")
@example(("2016-12-31T23:59:60Z", datetime(2017, 1, 1, tzinfo=timezone.utc)), "1.0.3")
def test_what_the_validator_accepts_the_rules_read_to_the_same_instant(drawn, version) -> None:  # type: ignore[no-untyped-def]
    text, instant = drawn
    try:
        stored = _stored(text, version)
    except XapiError as refused:
        assert instant is None, (text, refused)
        with pytest.raises(ValueError):
            normalise_timestamp(text)
        return
    assert instant is not None, text
    i = instant
    expected = f"{i.year:04d}-{i.month:02d}-{i.day:02d}T{i.hour:02d}:{i.minute:02d}:{i.second:02d}.{i.microsecond:06d}Z"
    assert normalise_timestamp(stored) == expected  # what ingest stored
    assert normalise_timestamp(text) == expected  # what the client sent
    assert datetime.fromisoformat(stored) == instant


def test_the_fast_path_reads_every_near_miss_of_its_shape_as_the_fields_do() -> None:
    """lrs.xapi.timestamps reads a text of its grammar with datetime.fromisoformat
    unless that parser refuses or may misread it, and field by field then:
    every character in every place of these, or one dropped, gives what the
    field-by-field reading gives."""
    from lrs.xapi import timestamps

    bases = ["2026-12-07T11:29:04.057Z", "2026-12-07T11:29:04+07:00", "9999-12-31T23:59:59.5-01:00",
             "0001-01-01T00:29:04-00:30", "20261207T112904,5+0700", "2026-12-07T11:29:04"]
    seen = 0
    for base in bases:
        variants = [base[:place] + base[place + 1:] for place in range(len(base))]
        variants += [base[:place] + character + base[place + 1:]
                     for place in range(len(base)) for character in "01256-+:.,TtZz W٣"]
        for value in variants:
            fast, fields = timestamps._read(value), timestamps._read_fields(value)
            assert (fast if isinstance(fast, str) else timestamps._utc(fast)) == fields, value
            seen += 1
    assert seen == sum(len(b) * 18 for b in bases)
