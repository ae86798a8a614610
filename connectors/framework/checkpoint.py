"""Cursor checkpoints: one small JSON file per connector run, replaced atomically.

The file is written to a temporary name in the same directory, flushed to
disk and renamed over the old one, so a crash leaves either the previous
checkpoint or the new one, never a torn file.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from connectors.framework.model import Cursor

FORMAT_VERSION = 1


class CheckpointError(RuntimeError):
    """The checkpoint file exists but belongs to another job or is unreadable."""


class CheckpointFile:
    """Load and save the cursor of one job, identified by ``job`` (a dict that
    says what is being imported where; a checkpoint for another job is refused
    rather than silently applied)."""

    def __init__(self, path: str | os.PathLike[str], job: dict[str, Any]) -> None:
        self.path = Path(path)
        self.job = job

    def load(self) -> Cursor | None:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            document = json.loads(raw)
        except ValueError as exc:
            raise CheckpointError(f"checkpoint {self.path} is not valid JSON: {exc}") from None
        if document.get("version") != FORMAT_VERSION:
            raise CheckpointError(f"checkpoint {self.path} has unknown version {document.get('version')!r}")
        if document.get("job") != self.job:
            raise CheckpointError(
                f"checkpoint {self.path} belongs to another job ({document.get('job')!r}); "
                "use --restart or another --checkpoint"
            )
        return document.get("cursor")

    def save(self, cursor: Cursor) -> None:
        document = {"version": FORMAT_VERSION, "job": self.job, "cursor": cursor}
        data = json.dumps(document, sort_keys=True, indent=1).encode()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=self.path.name + ".", suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
        _fsync_dir(self.path.parent)

    def clear(self) -> None:
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)
