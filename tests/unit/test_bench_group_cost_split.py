"""bench/group_cost_split.py solves 'per statement + per group / group size'."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from group_cost_split import split_stats  # noqa: E402


def _row(calls: int, own_s: float) -> tuple:
    return (calls, calls, own_s, own_s, {})


def test_a_functions_part_a_group_and_a_statement_come_apart():
    statements = 1600
    # commit: 100 µs and 3 calls a group, nothing a statement; encode: 10 µs a statement, one call each
    small = {("w.py", 1, "commit"): _row(3 * 1600, 1600 * 100e-6), ("w.py", 2, "encode"): _row(1600, 1600 * 10e-6)}
    large = {("w.py", 1, "commit"): _row(3 * 100, 100 * 100e-6), ("w.py", 2, "encode"): _row(1600, 1600 * 10e-6)}
    rows = {name: (group, statement, calls) for group, statement, calls, name in
            split_stats(small, 1600, large, 100, statements)}
    assert rows["commit (w.py:1)"] == pytest.approx((100.0, 0.0, 3.0), abs=1e-6)
    assert rows["encode (w.py:2)"] == pytest.approx((0.0, 10.0, 0.0), abs=1e-6)


def test_a_function_only_in_one_profile_counts_as_nothing_in_the_other():
    rows = split_stats({("w.py", 1, "idle"): _row(10, 10 * 50e-6)}, 10, {}, 1, 10)
    group, statement, calls, name = rows[0]
    # 50 µs a statement at groups of 1, nothing at one group of 10: all of it a group's
    assert (group, statement, calls, name) == (pytest.approx(500 / 9), pytest.approx(-50 / 9), pytest.approx(10 / 9), "idle (w.py:1)")
