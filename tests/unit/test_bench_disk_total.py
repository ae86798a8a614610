"""bench/disk_total.py's learner population: stable names or a new learner per statement."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.disk_total import learner_statement  # noqa: E402


def _actor(make, n: int) -> dict:
    return json.loads(make(n, f"00000000-0000-4000-8000-{n:012d}", "00000000-0000-4000-8000-000000000000"))["actor"]


def test_stable_learners_send_many_statements_under_one_name() -> None:
    make = learner_statement(2000)
    assert _actor(make, 7) == _actor(make, 2007) == _actor(make, 48_007)
    assert _actor(make, 7) != _actor(make, 8)
    assert len({json.dumps(_actor(make, n)) for n in range(10_000)}) == 2000


def test_no_population_names_a_new_learner_in_every_statement() -> None:
    make = learner_statement(0)
    assert len({json.dumps(_actor(make, n)) for n in range(60_000)}) == 60_000
