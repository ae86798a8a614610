"""ndjson(.gz) files as a resumable source (byte offset + line per file)."""

from __future__ import annotations

from connectors.framework.lines import LineFiles


def ndjson_source(paths: list[str], chunk_lines: int = 1000) -> LineFiles:
    return LineFiles(paths, name="ndjson", chunk_lines=chunk_lines)
