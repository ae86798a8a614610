"""Append-only JSON-lines files outside the database (the anchors, the
verify runs): one record a line, each append fsynced, and the last record
read from the file's tail only, since such a file grows for years."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TypeVar

import msgspec

__all__ = ["append_record", "last_record"]

T = TypeVar("T")

TAIL_BYTES = 64 * 1024


def append_record(path: Path, record: object) -> None:
    """Append ``record`` as one JSON line and fsync it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, msgspec.json.encode(record) + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)


def last_record(path: Path, type: type[T], tail_bytes: int = TAIL_BYTES) -> T | None:
    """The last line of ``path`` that decodes as ``type``, reading only the
    file's tail; None when there is no file or no such line.  A torn last
    line (a crash mid-append) and the cut first line of the tail are passed
    over.  Raises OSError when the file cannot be read."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - tail_bytes))
            tail = handle.read()
    except FileNotFoundError:
        return None
    for line in reversed(tail.splitlines()):
        if line.strip():
            try:
                return msgspec.json.decode(line, type=type)
            except msgspec.DecodeError:
                continue
    return None
