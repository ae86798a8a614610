"""The stall a wall-time budget is allowed (tests/e2e/machine_stall.py): the
longest step of a reference within a window, beyond its quiet step."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.machine_stall import REFERENCE_STEP_S, TICK_S, MachineStall, lost_within, within_budget


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


def test_a_stall_of_both_references_at_once_counts_once(tmp_path: Path) -> None:
    """The whole machine stalled 1 s: the reference process and the load
    generator's ticker both lost it, at the same time; the allowance is that
    second, not two."""
    stall = MachineStall("postgresql://unused", tmp_path)
    reference = [n * REFERENCE_STEP_S for n in range(50)] + [2.0 + n * REFERENCE_STEP_S for n in range(50)]
    (tmp_path / "reference-commits.txt").write_text("".join(f"{m}\n" for m in reference))
    stall._ticks = [n * TICK_S for n in range(99)] + [1.99 + n * TICK_S for n in range(100)]
    assert stall.within(0.5, 2.5) == pytest.approx(1.0, abs=0.03)


def test_stalls_of_the_two_references_apart_both_count(tmp_path: Path) -> None:
    stall = MachineStall("postgresql://unused", tmp_path)
    reference = [n * REFERENCE_STEP_S for n in range(50)] + [1.5 + n * REFERENCE_STEP_S for n in range(150)]
    (tmp_path / "reference-commits.txt").write_text("".join(f"{m}\n" for m in reference))  # 0.98..1.5
    stall._ticks = [n * TICK_S for n in range(200)] + [3.0 + n * TICK_S for n in range(100)]  # 1.99..3.0
    assert stall.within(0.5, 3.5) == pytest.approx(0.5 + 1.0, abs=0.03)


def test_the_stall_allowed_is_at_most_the_budget() -> None:
    """The reference commits to the service's PostgreSQL: a failover that is
    slow because PostgreSQL is (what the takeover writes holding up every
    WAL flush) stalls it as long, so an unbounded allowance grew with the
    defect -- 12 s against 5 s + a 20 s stall passed."""
    assert within_budget(4.9, 5.0, 0.0)
    assert not within_budget(5.1, 5.0, 0.0)
    assert within_budget(5.1, 5.0, 0.2)
    assert within_budget(9.9, 5.0, 20.0)
    assert not within_budget(12.0, 5.0, 20.0)
