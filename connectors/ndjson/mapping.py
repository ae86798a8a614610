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
"""

from __future__ import annotations

import hashlib

import msgspec

from connectors.framework.ids import NAMESPACE_NDJSON, statement_id
from connectors.framework.lines import Line
from connectors.framework.model import Mapped, MapResult, Skip, SourceItem

_decoder = msgspec.json.Decoder()


def map_line(item: SourceItem) -> MapResult:
    line: Line = item.data
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
