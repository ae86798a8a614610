"""bench/seal_cache_hits.py drives the worker's key cache with the key
statement answered in process: its stand-in must answer as the statement
does now (the keys, their notes and their stamp), or the bench stops at its
first miss."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "seal_cache_hits.py"


def test_the_bench_runs_with_more_learners_than_the_cache_holds() -> None:
    run = subprocess.run([sys.executable, str(BENCH), "--learners", "400", "--statements", "800", "--capacity", "200"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["statements"] == 800 and result["capacity"] == 200
    assert 0 < result["key_reads_share"] <= 1  # misses were read, through the stand-in
