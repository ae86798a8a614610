"""The stall a wall-time budget is allowed (tests/e2e/machine_stall.py): the
longest step of a reference within a window, beyond its quiet step."""

from __future__ import annotations

import pytest

from tests.e2e.machine_stall import lost_within


def test_a_reference_that_kept_its_step_lost_nothing() -> None:
    moments = [n * 0.02 for n in range(100)]
    assert lost_within(moments, 0.02, 0.3, 1.5) == pytest.approx(0.0, abs=1e-9)


def test_the_longest_step_inside_the_window_counts_beyond_the_quiet_step() -> None:
    moments = [0.0, 0.02, 0.04, 1.04, 1.06, 1.56, 1.58]  # stalled 1 s, then 0.5 s
    assert lost_within(moments, 0.02, 0.0, 2.0) == pytest.approx(0.98)


def test_a_stall_counts_only_for_the_part_inside_the_window() -> None:
    moments = [0.0] + [2.0 + n * 0.02 for n in range(60)]
    assert lost_within(moments, 0.02, 1.5, 3.0) == pytest.approx(0.48)  # 1.5..2.0 of the 2 s stall
    assert lost_within(moments, 0.02, 2.01, 2.015) == 0.0  # a window inside a quiet step


def test_a_reference_that_did_not_come_back_stalled_until_the_window_ends() -> None:
    assert lost_within([0.0, 0.02], 0.02, 0.5, 3.0) == pytest.approx(2.48)
    assert lost_within([], 0.02, 0.5, 3.0) == pytest.approx(2.5)
