"""Line-oriented files (plain or gzip) read in chunks with resumable positions.

The cursor records, for every file started, the byte offset of the next line
in its (decompressed) content and the number of lines read:
``{"files": {"/abs/path": [offset, line]}}``.  A resumed run continues each
file where it stopped, whatever order the files are given in; a plain file
that grew since (a live tracking log) is read on from there, one that shrank
(rotated) is read again from the start.  Gzip input is recognised by its magic
bytes; resuming inside a gzip file decompresses up to the offset again (gzip
cannot seek) but sends nothing.
"""

from __future__ import annotations

import asyncio
import gzip
import os
from dataclasses import dataclass
from typing import AsyncIterator, BinaryIO

from connectors.framework.model import Chunk, Cursor, SourceItem

GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True, slots=True)
class Line:
    """One non-empty line: the file it came from (as given), its 1-based
    number, and its bytes without the line ending."""

    file: str
    number: int
    text: bytes


class _OpenFile:
    def __init__(self, path: str) -> None:
        self.raw: BinaryIO = open(path, "rb")
        self.gzipped = self.raw.read(2) == GZIP_MAGIC
        self.raw.seek(0)
        self.stream: BinaryIO = gzip.GzipFile(fileobj=self.raw, mode="rb") if self.gzipped else self.raw  # type: ignore[assignment]

    def close(self) -> None:
        if self.gzipped:
            self.stream.close()
        self.raw.close()


class LineFiles:
    """A :class:`~connectors.framework.model.Source` of :class:`Line` items.

    Progress is counted in bytes of the files on disk (compressed bytes for
    gzip), so the bar's ETA is meaningful for both.
    """

    progress_unit = "B"

    def __init__(self, paths: list[str], *, name: str = "files", chunk_lines: int = 1000) -> None:
        self.name = name
        self.paths = [os.path.abspath(p) for p in paths]
        self.chunk_lines = chunk_lines
        self.progress_total: int | None = sum(os.path.getsize(p) for p in self.paths)

    async def chunks(self, cursor: Cursor | None) -> AsyncIterator[Chunk]:
        positions: dict[str, list[int]] = {
            path: list(position) for path, position in (cursor or {}).get("files", {}).items()
        }
        for path in self.paths:
            offset, line = positions.get(path, (0, 0))
            handle = await asyncio.to_thread(_OpenFile, path)
            try:
                size = os.path.getsize(path)
                if not handle.gzipped and offset > size:
                    offset, line = 0, 0  # truncated or replaced: read it again
                if offset:
                    await asyncio.to_thread(handle.stream.seek, offset)
                reported = 0
                while True:
                    items, offset, line, eof = await asyncio.to_thread(
                        self._read_chunk, handle, path, offset, line
                    )
                    positions[path] = [offset, line]
                    position = size if eof else handle.raw.tell()
                    yield Chunk(items, {"files": dict(positions)}, max(0, position - reported))
                    reported = position
                    if eof:
                        break
            finally:
                handle.close()

    def _read_chunk(
        self, handle: _OpenFile, path: str, offset: int, line: int
    ) -> tuple[list[SourceItem], int, int, bool]:
        items: list[SourceItem] = []
        name = os.path.basename(path)
        while len(items) < self.chunk_lines:
            text = handle.stream.readline()
            if not text:
                return items, offset, line, True
            offset += len(text)
            line += 1
            stripped = text.strip()
            if stripped:
                items.append(SourceItem(f"{name}:{line}", Line(path, line, stripped)))
        return items, offset, line, False
