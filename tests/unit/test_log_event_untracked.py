"""A runner builds a LogEvent for every message it reads; the collector does
not track them (projections/events.py), and they still compare and hash by
value, as a frozen dataclass did."""

from __future__ import annotations

import gc

from lrs.event_contract import RelayedEvent
from projections.events import LogEvent


def test_a_log_event_is_not_tracked_by_the_collector() -> None:
    claim = RelayedEvent(7, "6f1c1e9e-5d7b-4c55-9d3c-1c2f3b4a5d6e", "t", "statement", "s", b"{}", "ab", "cd")
    for event in (LogEvent(7, "t", "statement", b"{}"), LogEvent(7, "t", "statement", b"{}", claim=claim)):
        assert not gc.is_tracked(event)


def test_log_events_compare_and_hash_by_value_and_stay_frozen() -> None:
    a, b = LogEvent(1, "t", "statement", b"x"), LogEvent(1, "t", "statement", b"x")
    assert a == b and hash(a) == hash(b) and a is not b
    assert a != LogEvent(2, "t", "statement", b"x")
    assert a.claim is None
    try:
        a.position = 2  # type: ignore[misc]
    except AttributeError:
        pass
    else:
        raise AssertionError("a LogEvent can be changed")
