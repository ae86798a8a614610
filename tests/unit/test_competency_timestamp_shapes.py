"""normalise_timestamp's two common shapes (the LRS's ``stored``, a UTC
timestamp to the second) give what the general path gives, and refuse what
it refuses: the general path is the oracle (as it was before the shortcut,
reading with lrs.xapi.timestamps.utc_instant since branch timestamps, the
decision ingest's validator makes)."""

from __future__ import annotations

import itertools
import re

import pytest

from lrs.xapi.timestamps import utc_instant
from projections.competency.policy import normalise_timestamp

_UTC_SHAPE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:[0-5]\d(?:\.(\d{1,6}))?(?:Z|z|\+00:00)")


def general(value: str) -> str:
    d = utc_instant(value)
    utc = _UTC_SHAPE.fullmatch(value)
    if utc is not None:
        return f"{value[:19]}.{(utc.group(1) or '').ljust(6, '0')}Z"
    return f"{d.year:04d}-{d.month:02d}-{d.day:02d}T{d.hour:02d}:{d.minute:02d}:{d.second:02d}.{d.microsecond:06d}Z"


def outcome(function, value: str) -> str:  # type: ignore[no-untyped-def]
    try:
        return function(value)
    except ValueError:
        return "ValueError"


SHAPES = [
    "2026-12-07T11:29:04.057974Z", "2026-12-07T11:29:04Z", "0999-01-01T00:00:00Z", "2024-02-29T23:59:59.999999Z",
    # near misses of the two shapes: each must take the general path or be refused as before
    "2026-12-07 11:29:04.057974Z", "2026-12-07t11:29:04Z", "2026-12-07T11:29:04.057974z", "2026-12-07T11:29:04z",
    "2026-W49-1T11:29:04Z", "2026-W49-1T11:29:04.057974Z", "2026-12-07T11:29:04,057974Z", "2026-12-07T11:29:04.0579Z",
    "2026-12-07T11:29:04.05797ZZ", "2026-12-07T11:29:04.05797+Z", "2026-12-07T11:29:4.0579740Z",
    "2026-13-07T11:29:04Z", "2025-02-29T11:29:04.057974Z", "2026-12-07T24:00:00Z", "2026-12-07T11:60:04Z",
    "2026-12-07T11:29:60.000000Z", "2026-12-07T11:29:04.05797aZ", "2026-12-07T11:29:04+00:00", "2026-12-0７T11:29:04Z",
    "2026-12-07T11:29:04.057974+07:00", "2026-12-07T11:29:04", "2026-12-07T11:29:04.057974", "+026-12-07T11:29:04Z",
    "2026-12-07T11:29:04.Z", "2026-12-07T11:29:04.0579741Z", "2026-12-07T1:29:04.0579741Z", "Z", "",
]


@pytest.mark.parametrize("value", SHAPES)
def test_each_shape_is_normalised_as_the_general_path_does(value: str) -> None:
    assert outcome(normalise_timestamp, value) == outcome(general, value)


def test_every_character_in_every_place_of_the_two_shapes_agrees() -> None:
    seen = 0
    for base in ("2026-12-07T11:29:04.057974Z", "2026-12-07T11:29:04Z"):
        for place, character in itertools.product(range(len(base)), "0912-:.TtZz +W٣"):
            value = base[:place] + character + base[place + 1:]
            assert outcome(normalise_timestamp, value) == outcome(general, value), value
            seen += 1
    assert seen == (27 + 20) * 15
