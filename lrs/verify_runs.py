"""A record of every ``lrs audit verify`` run, kept outside the database.

An auditor does not trust the database with the proof that it was checked,
so each run appends one JSON line to ``LRS_VERIFY_RUNS_FILE`` (default
``<LRS_DATA_DIR>/verify-runs.jsonl``, beside the anchors) and fsyncs it::

    {"started_at", "finished_at", "checked_from", "checked_through", "head",
     "result", "first_bad", "anchors", "by"}

``result`` is ``intact`` or ``broken`` (``first_bad``: the first altered or
missing position); ``anchors`` is what the anchor check said (None when it was
not asked for); ``by`` is who ran it (``cli:<user>@<host>``).  The console's
operators' page shows the last line and warns when it is older than
``LRS_AUDIT_VERIFY_STALE_DAYS``.  The file only grows; reading the last run
reads its tail, not the whole file.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import msgspec

from lrs import jsonlines

__all__ = ["AnchorCheck", "VerifyRun", "append_run", "is_stale", "last_run"]



class AnchorCheck(msgspec.Struct, frozen=True):
    ok: bool
    checked: int  # anchors whose signature held
    message: str  # the line `lrs audit verify` printed last about the anchors


class VerifyRun(msgspec.Struct, frozen=True):
    started_at: str  # ISO 8601 UTC
    finished_at: str
    checked_from: int  # always 1: the chain is walked from the first event
    checked_through: int  # the last position whose hash was checked
    head: int  # the log head when the run started
    result: str  # "intact" | "broken"
    first_bad: int | None
    anchors: AnchorCheck | None
    by: str

    @property
    def ok(self) -> bool:
        return self.result == "intact" and (self.anchors is None or self.anchors.ok)

    @property
    def finished(self) -> datetime:
        return datetime.fromisoformat(self.finished_at)


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def append_run(path: Path, run: VerifyRun) -> None:
    """Append one line and fsync it."""
    jsonlines.append_record(path, run)


def last_run(path: Path) -> VerifyRun | None:
    """The last recorded run (None: no file, or no readable line in its tail)."""
    return jsonlines.last_record(path, VerifyRun)


def is_stale(run: VerifyRun | None, now: datetime, stale_after: timedelta) -> bool:
    """No run recorded, or the last one finished longer than ``stale_after`` ago."""
    return run is None or now - run.finished > stale_after
