"""One process at a time runs the embedded servers of a data directory.

``hold(data_dir)`` takes an exclusive ``flock`` on ``<data_dir>/lrs.lock`` and
writes the holder's pid and command into it.  The kernel releases the lock
when the holder exits, however it exits (a SIGKILL included), so a stale file
never blocks a start.  The servers' children do not inherit the descriptor.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
from pathlib import Path
from typing import Iterator

from lrs.startup import StartupError

LOCK_FILE = "lrs.lock"


class DataDirInUse(StartupError):
    """Another process holds the data directory."""


def _holder(lock_path: Path) -> str:
    try:
        text = lock_path.read_text().strip()
    except OSError:
        return "another process"
    pid, _, command = text.partition(" ")
    if not pid.isdigit():
        return "another process"
    return f"pid {pid}: {command}" if command else f"pid {pid}"


@contextlib.contextmanager
def hold(data_dir: Path) -> Iterator[Path]:
    """Hold ``data_dir`` for the duration; raise :class:`DataDirInUse` if taken."""
    data_dir = Path(data_dir).absolute()
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise StartupError(
            f"cannot use LRS_DATA_DIR {data_dir}: {exc.strerror}; "
            "give the service a directory it can write, or set LRS_DATA_DIR"
        ) from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DataDirInUse(
                f"LRS_DATA_DIR {data_dir} is in use by another lrs process ({_holder(data_dir / LOCK_FILE)}); "
                "stop that one, or give this one another LRS_DATA_DIR"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {' '.join(['lrs', *sys.argv[1:]])}\n".encode(), 0)
        yield data_dir
    finally:
        os.close(fd)  # releases the lock
