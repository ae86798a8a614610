"""bench/live_apply_ab.py sets each side's storage parameters on the databases the run applies from."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from live_apply_ab import measured_databases  # noqa: E402


def test_the_databases_are_those_of_the_logs_the_run_applies_from() -> None:
    assert measured_databases(["--mix", "cmi5", "--log-events", "20000", "--events", "500"]) == ["replay_cmi5_20000"]
    assert measured_databases(["--mix", "all-evidence", "--mix", "cmi5", "--batch", "100"]) == [
        "replay_all_evidence_100000", "replay_cmi5_100000"]
    assert measured_databases(["--database", "copy_of_log", "--mix", "cmi5"]) == ["copy_of_log"]
    assert sorted(measured_databases([])) == ["replay_all_evidence_100000", "replay_cmi5_100000"]
