"""Open edX tracking logs (plain or .gz JSON lines) as a resumable source:
the cursor is the file and the byte offset/line of the next unread event."""

from __future__ import annotations

from connectors.framework.lines import LineFiles


def tracking_log_source(paths: list[str], chunk_lines: int = 1000) -> LineFiles:
    return LineFiles(paths, name="openedx", chunk_lines=chunk_lines)
