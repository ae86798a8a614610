"""The Alternate Request Syntax of xAPI 1.0.3 (Communication 1.3).

A client that cannot set headers or use methods other than GET and POST
sends ``POST <resource>?method=<PUT|GET|DELETE|POST|HEAD>`` with an
``application/x-www-form-urlencoded`` body:

- ``content``: the request body (a UTF-8 string);
- ``Authorization``, ``X-Experience-API-Version``, ``Content-Type``,
  ``Content-Length``, ``If-Match``, ``If-None-Match``: header values (a form
  value wins over the same HTTP header);
- anything else: query string parameters.

This middleware runs before authentication and rewrites such a request into
the equivalent ordinary one (method, headers, query and body replaced), then
runs it through the rest of the middlewares and the handler of the route the
rewritten request matches, so authentication, scopes, limits and validation
are exactly those of header syntax.

Rejected with 400: any query parameter besides ``method``; ``method`` on a
request that is not a POST; an unknown method; a body that is not
form-encoded UTF-8; a form field given twice.  xAPI 2.0 (IEEE 9274.1.1)
removed the syntax, so a request whose version (header or form field) is 2.0
is rejected with 400 as well.  ``Content-Type`` defaults to
``application/json`` when ``content`` is sent without one.
"""

from __future__ import annotations

import asyncio
import functools
from urllib.parse import parse_qsl

from aiohttp import hdrs, web
from aiohttp.streams import StreamReader
from multidict import CIMultiDict, MultiDict

from lrs.http.middleware import LOG_FIELDS, Handler
from lrs.http.text_guard import unstorable_part
from lrs.xapi.errors import XapiError
from lrs.xapi.versions import negotiate_version

__all__ = ["alternate_syntax"]

METHODS = frozenset({"GET", "HEAD", "PUT", "POST", "DELETE"})
# Form fields that stand for headers (Communication 1.3.s3.b6), by lower-case name.
HEADER_FIELDS = {
    name.lower(): name
    for name in (
        "Authorization",
        "X-Experience-API-Version",
        "Content-Type",
        "Content-Length",
        "If-Match",
        "If-None-Match",
    )
}
FORM_TYPE = "application/x-www-form-urlencoded"
_READ_CHUNK = 64 * 1024


@web.middleware
async def alternate_syntax(request: web.Request, handler: Handler) -> web.StreamResponse:
    if "method" not in request.query or not request.path.startswith("/xapi/"):
        return await handler(request)
    if request.method != "POST":
        raise XapiError(
            400, f"the alternate request syntax (method=...) must be sent as a POST, not {request.method}", "method"
        )
    others = sorted(name for name in request.query if name != "method")
    if others:
        raise XapiError(
            400,
            "the alternate request syntax allows only the method query parameter; "
            f"send {', '.join(others)} as form fields",
            others[0],
        )
    values = request.query.getall("method")
    method = values[0].upper()
    if len(values) > 1 or method not in METHODS:
        raise XapiError(400, f"method must be one of {', '.join(sorted(METHODS))}, got {values[0]!r}", "method")

    body = await _read_body(request)
    if body and request.content_type != FORM_TYPE:
        raise XapiError(
            400, f"an alternate syntax request must have Content-Type {FORM_TYPE}, got {request.content_type!r}"
        )
    headers, query, content = _split_form(request, body)
    # the guard on the URL (text_guard) never saw what the form carries
    place = unstorable_part("", list(query.items()), list(headers.items()))
    if place is not None:
        raise XapiError(
            400, f"form field: {place.described} contains U+0000 (NUL), which cannot be stored; remove it", place.name
        )
    version = headers.get("X-Experience-API-Version")
    if version is not None and negotiate_version(version).startswith("2."):
        raise XapiError(
            400,
            "the alternate request syntax (method=...) is not part of xAPI 2.0; send an ordinary "
            f"{method} request",
            "method",
        )
    payload = b""
    if content is not None:
        payload = content.encode("utf-8")
        headers.setdefault("Content-Type", "application/json")
    headers["Content-Length"] = str(len(payload))

    log_fields = request.setdefault(LOG_FIELDS, {})
    log_fields["alternate_syntax"] = method
    rewritten = request.clone(method=method, rel_url=request.rel_url.with_query(query), headers=headers)
    rewritten._payload = _payload_of(payload, request)  # noqa: SLF001 - replaces the body already consumed
    match_info = await request.app.router.resolve(rewritten)
    match_info.add_app(request.app)
    match_info.freeze()
    rewritten._match_info = match_info  # noqa: SLF001 - what web.Application._handle does
    try:
        response = await _after_this(request.app, match_info.handler)(rewritten)
        if method == "HEAD" and isinstance(response, web.Response):
            # The server omits bodies of HEAD requests; this one arrived as a POST.
            response.body = b""
        return response
    finally:
        # The request log line reads the original request: give it what the
        # rewritten one learned (credential, log fields).
        for key in rewritten:
            if key not in request:
                request[key] = rewritten[key]


async def _read_body(request: web.Request) -> bytes:
    """The whole body, refusing (413) more than the app's ``client_max_size``."""
    limit = request.client_max_size
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await request.content.read(_READ_CHUNK)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if limit and size > limit:
            raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=size)
        chunks.append(chunk)


def _split_form(request: web.Request, body: bytes) -> tuple[CIMultiDict[str], MultiDict[str], str | None]:
    """(headers, query parameters, content) of the rewritten request."""
    try:
        text = body.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=True, errors="strict") if text else []
    except (UnicodeDecodeError, ValueError):
        raise XapiError(400, f"the body of an alternate syntax request must be {FORM_TYPE} UTF-8 text") from None
    headers = CIMultiDict(request.headers)
    for name in (hdrs.CONTENT_TYPE, hdrs.CONTENT_LENGTH, hdrs.TRANSFER_ENCODING, hdrs.CONTENT_ENCODING):
        headers.popall(name, None)
    query: MultiDict[str] = MultiDict()
    content = None
    seen: set[str] = set()
    for name, value in pairs:
        header = HEADER_FIELDS.get(name.lower())
        key = header.lower() if header is not None else name
        if key in seen:
            raise XapiError(400, f"form field {name!r} appears more than once", name)
        seen.add(key)
        if name == "content":
            content = value
        elif header == "Content-Length":
            continue  # recomputed from content
        elif header is not None:
            headers[header] = value
        else:
            query.add(name, value)
    return headers, query, content


def _payload_of(data: bytes, request: web.Request) -> StreamReader:
    stream = StreamReader(request.protocol, max(len(data), 2**16), loop=asyncio.get_running_loop())
    if data:
        stream.feed_data(data)
    stream.feed_eof()
    return stream


def _after_this(app: web.Application, handler: Handler) -> Handler:
    """``handler`` wrapped in the app's middlewares that come after this one."""
    middlewares = list(app.middlewares)
    for middleware in reversed(middlewares[middlewares.index(alternate_syntax) + 1 :]):
        handler = functools.partial(middleware, handler=handler)
    return handler
