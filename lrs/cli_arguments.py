"""Argument types every command line shares (pure: argparse and pathlib only).

Here rather than in lrs.commands.common so that the connectors' commands
(``lrs import``, ``lrs pull``), which import nothing of lrs's commands, refuse
a count or an unreadable file with the same words and exit status (README.md,
"Exit status")."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["at_least_one", "cannot_read", "input_file"]


def at_least_one(value: str) -> int:
    """An argparse ``type`` for a count (a batch, processes, attempts): one
    below 1 is a usage error, exit status 2 like any wrong argument, e.g.
    ``lrs audit verify: argument --batch-size: must be a whole number of at
    least 1, not '0'`` (README.md, "Exit status")."""
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, not {value!r}")
    return number


def input_file(value: str) -> Path:
    """An argparse ``type`` for a file the command reads: a path it cannot
    open (none there, a directory, no permission) is a usage error, exit
    status 2 like a wrong argument or a bad LRS_* setting, e.g. ``lrs roster
    load: argument FILE: cannot read units.csv: No such file or directory``;
    a file read and refused for its content is the command's own finding,
    exit status 1 (README.md, "Exit status")."""
    problem = cannot_read(value)
    if problem is not None:
        raise argparse.ArgumentTypeError(problem)
    return Path(value)


def cannot_read(path: str | Path) -> str | None:
    """Why the command cannot read the file at ``path`` (``cannot read
    units.csv: No such file or directory``), or None when it can: the words
    of :func:`input_file`, for a file the command reads by default rather
    than by name (``lrs audit verify --anchors`` without FILE), which the
    command then refuses as a usage error too, exit status 2."""
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        return f"cannot read {path}: {exc.strerror or exc}"
    return None
