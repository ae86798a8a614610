"""Refuse text PostgreSQL cannot store, at the edge.

PostgreSQL ``text`` (and ``jsonb``) cannot hold U+0000.  Path segments,
query parameters and header values end up in text columns and query
parameters (document ids, registrations, IRIs, learner and unit ids), where
a NUL would fail the query with a database error, a 500.  So a request with
a NUL anywhere in its path, a query parameter (name or value) or a header
value is answered 400 naming the place, before any handler runs.  (Bodies
are checked where their strings reach text columns: identifying keys refuse
U+0000 in :mod:`lrs.xapi.actors`; statement and document bodies are stored
as bytes, where a NUL is just a character.)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from aiohttp import web

from lrs.http.middleware import Handler, error_response

__all__ = ["NulPlace", "may_carry_nul", "refuse_unstorable_text", "unstorable_part"]

NUL = "\x00"


class NulPlace(NamedTuple):
    """Where a request carries a NUL: ``described`` for its sender's message, ``name`` the
    query parameter or header (the answer's ``path``, as every other 400 names the
    parameter), None for the request path."""

    described: str
    name: str | None


def unstorable_part(path: str, query: list[tuple[str, str]], headers: list[tuple[str, str]]) -> NulPlace | None:
    """Where a request carries a NUL, or None (pure)."""
    if NUL in path:
        return NulPlace("the request path", None)
    for name, value in query:
        if NUL in name or NUL in value:
            clean = name.replace(NUL, "")
            return NulPlace(f"query parameter {clean!r}", clean)
    for name, value in headers:
        if NUL in value:
            return NulPlace(f"header {name!r}", name)
    return None


def may_carry_nul(raw_path: str, header_values: Iterable[str]) -> bool:
    """Whether a request may carry a NUL where :func:`unstorable_part` looks
    (pure): False only when it cannot.  The decoded path and query hold a
    NUL only where the raw target has one, or ``%00`` (percent-decoding is
    the only way to one); a header value holds one only if their text
    joined does.  Costs about a microsecond less a request than building
    the lists :func:`unstorable_part` walks."""
    return NUL in raw_path or "%00" in raw_path or NUL in "".join(header_values)


@web.middleware
async def refuse_unstorable_text(request: web.Request, handler: Handler) -> web.StreamResponse:
    if may_carry_nul(request.raw_path, request.headers.values()):
        place = unstorable_part(request.path, list(request.query.items()), list(request.headers.items()))
        if place is not None:
            return error_response(
                400, f"{place.described} contains U+0000 (NUL), which cannot be stored; remove it", place.name
            )
    return await handler(request)
