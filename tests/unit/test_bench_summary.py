"""The ingest bench quotes the median of repeated runs, per batch size and concurrency."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from ingest import summarise  # noqa: E402


def _run(batch: int, concurrency: int, rate: float) -> dict:
    return {"batch_size": batch, "concurrency": concurrency, "statements_per_s": rate}


def test_each_batch_size_gets_the_median_and_range_of_its_runs() -> None:
    runs = [_run(100, 16, 9000.0), _run(1, 32, 2500.0), _run(100, 16, 7000.0), _run(100, 16, 10500.0)]
    assert summarise(runs) == [
        {"batch": 100, "concurrency": 16, "runs": 3, "median_statements_per_s": 9000.0,
         "min_statements_per_s": 7000.0, "max_statements_per_s": 10500.0},
        {"batch": 1, "concurrency": 32, "runs": 1, "median_statements_per_s": 2500.0,
         "min_statements_per_s": 2500.0, "max_statements_per_s": 2500.0},
    ]


def test_the_same_batch_size_at_another_concurrency_is_summarised_apart() -> None:
    runs = [_run(100, 16, 9000.0), _run(100, 8, 6000.0), _run(100, 16, 8000.0)]
    rows = {(r["batch"], r["concurrency"]): r for r in summarise(runs)}
    assert rows[(100, 16)]["median_statements_per_s"] == 8500.0
    assert rows[(100, 8)]["runs"] == 1
