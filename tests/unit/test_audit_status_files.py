"""The operators' page reads the anchors and verify-runs files outside the
database; a file it cannot read is a problem shown on the page, never a 500."""

from pathlib import Path
from types import SimpleNamespace

from lrs.console.audit_status import _read_files


def test_unreadable_verify_runs_and_anchor_files_are_reported_not_raised(tmp_path: Path) -> None:
    unreadable = tmp_path / "a-directory"
    unreadable.mkdir()  # opening a directory as a file raises IsADirectoryError, an OSError
    settings = SimpleNamespace(
        verify_runs_file=unreadable, anchor_log_file=unreadable, signing_key_file=tmp_path / "signing-key"
    )
    anchor, holds, problem, run = _read_files(settings)
    assert anchor is None and holds is None and run is None
    assert problem is not None and "a-directory" in problem


def test_missing_files_are_no_anchor_and_no_run(tmp_path: Path) -> None:
    settings = SimpleNamespace(
        verify_runs_file=tmp_path / "none.jsonl", anchor_log_file=tmp_path / "none.log",
        signing_key_file=tmp_path / "signing-key",
    )
    assert _read_files(settings) == (None, None, None, None)
