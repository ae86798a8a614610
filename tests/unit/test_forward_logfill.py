"""connectors.forward.logfill.holes_up_to: which positions a forwarder reads
from the log (pure)."""

from __future__ import annotations

from connectors.forward.logfill import holes_up_to
from connectors.forward.lowwater import LowWaterMark


def test_a_new_forwarder_reads_the_whole_log_up_to_the_limit() -> None:
    assert holes_up_to(LowWaterMark(), 9) == [(1, 9)]
    assert holes_up_to(LowWaterMark(), 0) == []


def test_the_holes_below_the_highest_position_done_and_the_stretch_above_it() -> None:
    mark = LowWaterMark(3, [(6, 7), (10, 12)])
    assert holes_up_to(mark, 12) == [(4, 5), (8, 9)]  # the highest done: nothing above
    assert holes_up_to(mark, 15) == [(4, 5), (8, 9), (13, 15)]
    assert holes_up_to(mark, 8) == [(4, 5), (8, 8)]  # clipped to the limit
    assert holes_up_to(mark, 3) == []


def test_nothing_when_every_position_up_to_the_limit_is_done() -> None:
    assert holes_up_to(LowWaterMark(20), 20) == []
    assert holes_up_to(LowWaterMark(20), 12) == []


def test_positions_awaiting_their_retry_are_left_out_of_the_holes() -> None:
    from connectors.forward.logfill import holes_without

    assert holes_without([(1, 9)], [1, 5, 9]) == [(2, 4), (6, 8)]
    assert holes_without([(1, 3), (7, 9)], [8, 20]) == [(1, 3), (7, 7), (9, 9)]
    assert holes_without([(4, 4)], [4]) == []
    assert holes_without([(1, 5)], []) == [(1, 5)]


def test_the_first_positions_of_the_holes_up_to_a_batch() -> None:
    from connectors.forward.logfill import first_positions

    assert first_positions([(1, 10_000_000)], 3) == [1, 2, 3]
    assert first_positions([(4, 5), (8, 9), (13, 15)], 5) == [4, 5, 8, 9, 13]
    assert first_positions([(4, 5)], 10) == [4, 5]
    assert first_positions([], 10) == [] and first_positions([(1, 2)], 0) == []
