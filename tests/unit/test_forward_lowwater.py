"""The forwarder's low-water mark against a plain set of positions, over
any order of deliveries (repeats included) and any subset dealt with."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.forward.lowwater import LowWaterMark


def model_low_water(done: set[int]) -> int:
    low = 0
    while low + 1 in done:
        low += 1
    return low


def test_a_position_overtaken_by_later_ones_is_not_done() -> None:
    mark = LowWaterMark()
    for position in (1, 2, 4, 5, 6):  # 3 awaits its redelivery
        mark.record(position)
    assert mark.low_water == 2 and mark.done_above == ((4, 6),)
    assert not mark.is_done(3) and mark.is_done(2) and mark.is_done(5) and not mark.is_done(7)
    assert mark.gaps() == [(3, 3)] and mark.highest == 6
    mark.record(3)
    assert mark.low_water == 6 and mark.done_above == () and mark.gaps() == []


def test_ranges_merge_and_join_the_low_water_mark() -> None:
    mark = LowWaterMark(10)
    mark.record_range(20, 30)
    mark.record_range(14, 15)
    mark.record_range(16, 19)
    assert mark.done_above == ((14, 30),) and mark.gaps() == [(11, 13)] and mark.gaps(after=12) == [(13, 13)]
    mark.record_range(5, 13)  # partly below the mark
    assert mark.low_water == 30 and mark.done_above == ()


def test_serialised_form_round_trips_and_nonsense_is_refused() -> None:
    mark = LowWaterMark(7, [(9, 9), (12, 20)])
    assert mark.serialise() == (7, [9, 9, 12, 20])
    assert LowWaterMark.deserialise(*mark.serialise()) == mark
    assert LowWaterMark.deserialise(0, []) == LowWaterMark()
    for low, flat in ((7, [8, 9]), (7, [9]), (7, [10, 9]), (7, [9, 10, 11, 12]), (7, [12, 20, 9, 9]), (-1, [])):
        with pytest.raises(ValueError):
            LowWaterMark.deserialise(low, flat)


@given(st.data())
def test_any_delivery_order_matches_the_set_of_positions_done(data: st.DataObject) -> None:
    size = data.draw(st.integers(1, 60))
    done = data.draw(st.sets(st.integers(1, size)))
    order = data.draw(st.permutations(sorted(done)))
    repeats = data.draw(st.lists(st.sampled_from(sorted(done)), max_size=10)) if done else []
    mark = LowWaterMark()
    seen: set[int] = set()
    for position in [*order, *repeats]:
        mark.record(position)
        seen.add(position)
        assert mark.low_water == model_low_water(seen)
    assert all(mark.is_done(p) == (p in done) for p in range(1, size + 2))
    # Each run above the mark is followed by a position not done: no more runs than holes.
    holes = [p for p in range(mark.low_water + 1, mark.highest + 1) if p not in done]
    assert len(mark.done_above) <= len(holes)
    assert [p for first, last in mark.gaps() for p in range(first, last + 1)] == holes
    assert LowWaterMark.deserialise(*mark.serialise()) == mark


@given(st.lists(st.tuples(st.integers(1, 80), st.integers(0, 8)), max_size=30))
def test_ranges_in_any_order_match_the_set(ranges: list[tuple[int, int]]) -> None:
    mark = LowWaterMark()
    done: set[int] = set()
    for first, length in ranges:
        mark.record_range(first, first + length - 1)  # length 0: an empty range
        done.update(range(first, first + length))
    assert mark.low_water == model_low_water(done)
    assert all(mark.is_done(p) == (p in done) for p in range(1, 100))
    assert LowWaterMark.deserialise(*mark.serialise()) == mark


@given(st.data())
def test_a_restart_anywhere_keeps_what_was_done(data: st.DataObject) -> None:
    """Saved and loaded between any two deliveries, the mark recognises the
    positions done before and only those."""
    size = data.draw(st.integers(1, 40))
    order = data.draw(st.permutations(list(range(1, size + 1))))
    cut = data.draw(st.integers(0, size))
    mark = LowWaterMark()
    for position in order[:cut]:
        mark.record(position)
    restored = LowWaterMark.deserialise(*mark.serialise())
    assert [p for p in range(1, size + 1) if not restored.is_done(p)] == sorted(order[cut:])
    for position in order[cut:]:
        restored.record(position)
    assert restored.low_water == size and restored.done_above == ()


@given(st.sets(st.integers(1, 200)), st.integers(0, 5))
def test_forgetting_runs_only_ever_makes_positions_be_sent_again(done: set[int], keep: int) -> None:
    mark = LowWaterMark()
    for position in done:
        mark.record(position)
    before = {p for p in range(1, 202) if mark.is_done(p)}
    runs = mark.done_above
    forgotten = mark.forget_lowest(keep)
    after = {p for p in range(1, 202) if mark.is_done(p)}
    assert after <= before and forgotten == max(len(runs) - keep, 0)
    assert mark.done_above == runs[forgotten:] and mark.low_water == model_low_water(done)
    assert LowWaterMark.deserialise(*mark.serialise()) == mark
