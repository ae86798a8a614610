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

from aiohttp import web

from lrs.http.middleware import Handler, error_response

__all__ = ["refuse_unstorable_text", "unstorable_part"]

NUL = "\x00"


def unstorable_part(path: str, query: list[tuple[str, str]], headers: list[tuple[str, str]]) -> str | None:
    """Where a request carries a NUL, described for its sender, or None (pure)."""
    if NUL in path:
        return "the request path"
    for name, value in query:
        if NUL in name or NUL in value:
            return f"query parameter {name.replace(NUL, '')!r}"
    for name, value in headers:
        if NUL in value:
            return f"header {name!r}"
    return None


@web.middleware
async def refuse_unstorable_text(request: web.Request, handler: Handler) -> web.StreamResponse:
    place = unstorable_part(request.path, list(request.query.items()), list(request.headers.items()))
    if place is not None:
        return error_response(400, f"{place} contains U+0000 (NUL), which cannot be stored; remove it")
    return await handler(request)
