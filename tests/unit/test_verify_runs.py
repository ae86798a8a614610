"""The record of `lrs audit verify` runs and the last anchor, read from the files' tails (pure file I/O)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from lrs import anchors, jsonlines, verify_runs


def run(finished_at: str, result: str = "intact", first_bad: int | None = None) -> verify_runs.VerifyRun:
    return verify_runs.VerifyRun(
        started_at=finished_at, finished_at=finished_at, checked_from=1, checked_through=10, head=10,
        result=result, first_bad=first_bad, anchors=None, by="cli:auditor@host",
    )


def test_no_file_no_run_and_stale(tmp_path: Path) -> None:
    path = tmp_path / "runs.jsonl"
    assert verify_runs.last_run(path) is None
    assert verify_runs.is_stale(None, datetime.now(timezone.utc), timedelta(days=7))


def test_the_last_run_wins_and_a_torn_line_is_passed_over(tmp_path: Path) -> None:
    path = tmp_path / "runs.jsonl"
    verify_runs.append_run(path, run("2026-12-01T00:00:00+00:00"))
    verify_runs.append_run(path, run("2026-12-05T00:00:00+00:00", "broken", 7))
    with open(path, "ab") as handle:
        handle.write(b'{"started_at": "2026-12-06')  # a crash mid-write
    last = verify_runs.last_run(path)
    assert last is not None and last.first_bad == 7 and not last.ok
    now = datetime(2026, 12, 6, tzinfo=timezone.utc)
    assert not verify_runs.is_stale(last, now, timedelta(days=7))
    assert verify_runs.is_stale(last, now, timedelta(hours=12))


def test_a_long_file_is_read_by_its_tail(tmp_path: Path) -> None:
    path = tmp_path / "runs.jsonl"
    for day in range(1, 29):
        verify_runs.append_run(path, run(f"2026-02-{day:02d}T00:00:00+00:00"))
    with open(path, "ab") as handle:
        handle.write(b"x" * (jsonlines.TAIL_BYTES // 2) + b"\n")  # garbage in the tail, then a good line
    verify_runs.append_run(path, run("2026-03-01T00:00:00+00:00"))
    assert verify_runs.last_run(path).finished_at == "2026-03-01T00:00:00+00:00"


def test_last_anchor(tmp_path: Path) -> None:
    path = tmp_path / "anchors.jsonl"
    assert anchors.last_anchor(path) is None
    key = Ed25519PrivateKey.generate()
    at = datetime(2026, 12, 6, tzinfo=timezone.utc)
    for position in (5, 9):
        anchors.append_anchor(path, anchors.sign(key, position, bytes(32), at))
    last = anchors.last_anchor(path)
    assert last is not None and last.position == 9
    assert anchors.signature_holds(last, {anchors.key_id(key.public_key()): key.public_key()})
