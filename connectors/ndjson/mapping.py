"""ndjson lines -> statements (pure).

Each non-empty line holds one statement object or an array of them.  They are
sent as they are, except that a statement without an ``id`` gets one:

    UUIDv5(NAMESPACE_NDJSON, "<line number>", "<index in the line>",
           "<SHA-256 of the statement's canonical JSON>")

(see :func:`connectors.framework.ids.statement_id`; the canonical JSON has
sorted keys and no whitespace).  The file's name is deliberately not part of
the identity, so renaming or compressing a file keeps the ids; the line number
and index keep two identical id-less statements on different lines apart, and
the content hash keeps different files from colliding at the same line.

The common line -- one 1.0.x statement object that has its id -- is sent as the
exact bytes of the line (a ``msgspec.Raw``): only its ``id`` is decoded, which
is an order of magnitude cheaper than building the whole object and keeps a
bulk import's client side well below the LRS's own cost per statement.
"""

from __future__ import annotations

import hashlib

import msgspec

from connectors.framework.ids import NAMESPACE_NDJSON, statement_id
from connectors.framework.lines import Line
from connectors.framework.model import Mapped, MapResult, Skip, SourceItem

_decoder = msgspec.json.Decoder()


class _StatementHead(msgspec.Struct):
    """A statement object's ``id`` and ``version``; every other field is skipped unread."""

    id: str | None = None
    version: str | None = None


_head_decoder = msgspec.json.Decoder(_StatementHead)


def map_line(item: SourceItem) -> MapResult:
    line: Line = item.data
    try:
        head = _head_decoder.decode(line.text)
    except (msgspec.DecodeError, msgspec.ValidationError):
        head = None  # an array, not JSON, an id that is not a string: the general path says
    if head is not None and head.id is not None and not (head.version or "").startswith("2."):
        return Mapped([msgspec.Raw(line.text)])
    try:
        document = _decoder.decode(line.text)
    except msgspec.DecodeError as exc:
        return Skip("invalid JSON", str(exc))
    statements = document if isinstance(document, list) else [document]
    if not statements:
        return Skip("empty array")
    if not all(isinstance(s, dict) for s in statements):
        return Skip("not a statement object")
    out = []
    for index, statement in enumerate(statements):
        if "id" not in statement:
            digest = hashlib.sha256(msgspec.json.encode(statement, order="sorted")).hexdigest()
            statement = {"id": statement_id(NAMESPACE_NDJSON, str(line.number), str(index), digest), **statement}
        out.append(statement)
    return Mapped(out)
