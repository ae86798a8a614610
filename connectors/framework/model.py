"""Values passed between a connector's source, mapping, sink and runner."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Callable, Protocol, Union

JSON = dict[str, Any]
Cursor = dict[str, Any]


@dataclass(frozen=True, slots=True)
class SourceItem:
    """One record read from a source.

    ``ref`` says where it came from (``file.log:12``) for reports; ``data`` is
    the decoded record (a platform event, a statement, or a list of statements).
    """

    ref: str
    data: Any


@dataclass(frozen=True, slots=True)
class Chunk:
    """Items read together, and the cursor that resumes right after them.

    ``progress`` is how far the chunk moved the source, in the unit of
    ``Source.progress_total`` (bytes for files, items otherwise).
    """

    items: list[SourceItem]
    cursor: Cursor
    progress: int = 0


class Source(Protocol):
    """Where a connector reads from.

    ``chunks(cursor)`` yields chunks in order starting right after ``cursor``
    (from the beginning when it is None).  Every chunk's cursor must resume
    after that chunk and everything before it.
    """

    name: str
    progress_unit: str
    progress_total: int | None

    def chunks(self, cursor: Cursor | None) -> AsyncIterator[Chunk]: ...


@dataclass(frozen=True, slots=True)
class Skip:
    """A record the mapping cannot turn into a statement; ``kind`` groups them
    in the summary (an Open edX event type, "invalid JSON", ...)."""

    kind: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Mapped:
    """Statements made from one source item (often one, sometimes several);
    each a JSON object or its encoded bytes as a ``msgspec.Raw``."""

    statements: list[Any]


MapResult = Union[Mapped, Skip]
Mapping = Callable[[SourceItem], MapResult]


@dataclass(frozen=True, slots=True)
class Rejection:
    """A statement the LRS refused, with its message."""

    statement_id: str | None
    ref: str
    status: int
    reason: str


@dataclass(slots=True)
class Summary:
    """What a run did; printed at the end and returned for tests."""

    read: int = 0
    sent: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    rejected: list[Rejection] = field(default_factory=list)
    completed: bool = False
    error: str | None = None

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())

    def render(self, max_rejections: int = 50) -> str:
        lines = [
            f"read      {self.read}",
            f"sent      {self.sent}",
            f"skipped   {self.skipped_total}",
        ]
        for kind, count in sorted(self.skipped.items(), key=lambda kv: (-kv[1], kv[0])):
            lines.append(f"  {count:>8}  {kind}")
        lines.append(f"rejected  {len(self.rejected)}")
        for rejection in self.rejected[:max_rejections]:
            lines.append(
                f"  {rejection.ref} id={rejection.statement_id} "
                f"HTTP {rejection.status}: {rejection.reason}"
            )
        if len(self.rejected) > max_rejections:
            lines.append(f"  ... and {len(self.rejected) - max_rejections} more")
        if self.error:
            lines.append(f"stopped   {self.error}")
        elif not self.completed:
            lines.append("stopped   before the end of the source")
        return "\n".join(lines)
