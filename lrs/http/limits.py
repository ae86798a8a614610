"""Request body size: 413 before any of the body is read.

aiohttp's ``client_max_size`` stops ``request.read()`` at the limit, but a
handler that streams ``request.content`` (multipart attachments, documents)
is not covered by it.  A declared ``Content-Length`` above the limit is
refused here, up front, with the same JSON error shape, so nothing of such a
request is read or stored.  (Bodies without a declared length are bounded by
``client_max_size`` on ``read()`` and by each streaming reader itself.)
"""

from __future__ import annotations

from aiohttp import web

from lrs.http.middleware import Handler

__all__ = ["body_size_limit"]


@web.middleware
async def body_size_limit(request: web.Request, handler: Handler) -> web.StreamResponse:
    limit = request.client_max_size
    length = request.content_length
    if limit and length is not None and length > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=length)
    return await handler(request)
