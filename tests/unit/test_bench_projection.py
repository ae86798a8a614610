"""The replay benches measure the checkout they are given, and fill-only runs end cleanly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

from projection_ab import check_digests  # noqa: E402


def test_a_fill_only_run_has_no_digests_to_compare() -> None:
    check_digests([], ["cmi5", "all-evidence"], {"start": "/a", "end": "/b"})


def test_sides_that_left_different_projections_fail() -> None:
    runs = [{"mix": "cmi5", "side": "start", "digest": "x", "digest_here": "1"},
            {"mix": "cmi5", "side": "end", "digest": "y", "digest_here": "2"}]
    with pytest.raises(SystemExit, match="differ on the cmi5 log"):
        check_digests(runs, ["cmi5"], {"start": "/a", "end": "/b"})


def test_one_sides_replays_that_differ_fail() -> None:
    runs = [{"mix": "cmi5", "side": "start", "digest": d, "digest_here": "1"} for d in ("x", "y")]
    with pytest.raises(SystemExit, match="start's replays of the cmi5 log differ"):
        check_digests(runs, ["cmi5"], {"start": "/a"})


@pytest.mark.parametrize("module", ["projection", "replay_measure"])
def test_importing_a_replay_bench_leaves_the_checkout_put_first_in_front(module: str, tmp_path: Path) -> None:
    """A ``--tree`` bench puts another checkout first, then imports these:
    they must neither move it back nor have imported the project already."""
    probe = (
        f"import sys; sys.path.insert(0, {str(BENCH)!r}); sys.path.insert(0, {str(tmp_path)!r}); "
        f"import {module}; "
        f"assert sys.path[0] == {str(tmp_path)!r}, sys.path[:3]; "
        "assert not [m for m in sys.modules if m.split('.')[0] in ('lrs', 'projections')], 'imported the project'"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr


def test_a_sample_goes_to_the_innermost_piece_of_its_process() -> None:
    from replay_pyspy_shares import shares

    parent = 'process 1:"python replay_measure.py";main (m.py:1);replay (projections/replay.py:111)'
    worker = parent + ';process 2:"python replay_measure.py";_share_in_worker (r.py:3)'
    found = shares([
        f"{parent};copy_records_to_table (a.py:1);learner_rows (f.py:2);encode_state (codec.py:3) 5\n",
        f"{parent};copy_records_to_table (a.py:1) 2\n",
        f"{worker};take_hinted (s.py:1);evidence_of (p.py:2);normalise_timestamp (p.py:3) 7\n",
        'process 1:"python replay_measure.py";digest (store.py:1) 9\n',  # outside the replay: not counted
    ])
    assert found["replaying"] == {"encode the state (codec)": 5, "COPY into the tables (asyncpg)": 2}
    assert found["worker"] == {"evidence: normalise_timestamp": 7}
