"""CORS for the xAPI API (``/xapi/...``), so content launched in a browser
from another origin (xAPIWrapper, TinCanJS, cmi5 players) can reach the LRS.

Allowed origins come from ``LRS_CORS_ORIGINS`` (none by default).  The rules
follow the Fetch standard:

* a preflight (``OPTIONS`` with ``Origin`` and
  ``Access-Control-Request-Method``) is answered here, before authentication
  and the version check: browsers send it without credentials or custom
  headers;
* a listed origin is echoed in ``Access-Control-Allow-Origin`` with
  ``Access-Control-Allow-Credentials: true`` and ``Vary: Origin``;
* ``*`` (any origin) answers ``Access-Control-Allow-Origin: *`` and never
  allows credentials (browsers refuse that combination); ``Authorization`` is
  still listed as an allowed header, so scripts sending it explicitly work;
* responses expose the xAPI headers scripts need to read.

:func:`cors_headers` and :func:`preflight_headers` are pure; the middleware
and the ``on_response_prepare`` hook only apply them.
"""

from __future__ import annotations

from typing import Mapping

from aiohttp import web
from multidict import CIMultiDict

from lrs.http import keys
from lrs.http.middleware import Handler, error_response

__all__ = [
    "ALLOWED_HEADERS",
    "ALLOWED_METHODS",
    "EXPOSED_HEADERS",
    "add_cors_headers",
    "cors_headers",
    "cors_preflight",
    "preflight_headers",
]

PREFIX = "/xapi/"
ALLOWED_METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE")
ALLOWED_HEADERS = ("Authorization", "Content-Type", "If-Match", "If-None-Match", "X-Experience-API-Version")
EXPOSED_HEADERS = ("X-Experience-API-Version", "X-Experience-API-Consistent-Through", "ETag", "Last-Modified")
MAX_AGE_S = 600
_ALLOWED_HEADERS_LOWER = frozenset(h.lower() for h in ALLOWED_HEADERS)


def _allowed_origin(origin: str | None, allowed: tuple[str, ...]) -> str | None:
    """The value of Access-Control-Allow-Origin for ``origin``, or None."""
    if not origin or not allowed:
        return None
    if allowed == ("*",):
        return "*"
    return origin if origin in allowed else None


def cors_headers(origin: str | None, allowed: tuple[str, ...]) -> dict[str, str]:
    """Headers for an actual (non-preflight) response to ``origin``."""
    headers = {"Vary": "Origin"} if allowed and allowed != ("*",) else {}
    value = _allowed_origin(origin, allowed)
    if value is None:
        return headers
    headers["Access-Control-Allow-Origin"] = value
    headers["Access-Control-Expose-Headers"] = ", ".join(EXPOSED_HEADERS)
    if value != "*":
        headers["Access-Control-Allow-Credentials"] = "true"
    return headers


class PreflightRefused(ValueError):
    """The preflight asks for something this LRS does not allow; the message says what."""


def preflight_headers(
    origin: str | None, method: str, request_headers: str, allowed: tuple[str, ...]
) -> dict[str, str]:
    """Headers answering a preflight, or PreflightRefused naming the problem."""
    value = _allowed_origin(origin, allowed)
    if value is None:
        if not allowed:
            raise PreflightRefused("cross-origin requests are not enabled on this LRS (LRS_CORS_ORIGINS is empty)")
        raise PreflightRefused(f"origin {origin!r} is not in LRS_CORS_ORIGINS")
    if method.upper() not in ALLOWED_METHODS:
        raise PreflightRefused(
            f"method {method!r} is not allowed; allowed: {', '.join(ALLOWED_METHODS)}"
        )
    asked = [h.strip() for h in request_headers.split(",") if h.strip()]
    refused = [h for h in asked if h.lower() not in _ALLOWED_HEADERS_LOWER]
    if refused:
        raise PreflightRefused(
            f"header(s) {', '.join(refused)} not allowed; allowed: {', '.join(ALLOWED_HEADERS)}"
        )
    headers = cors_headers(origin, allowed)
    headers.pop("Access-Control-Expose-Headers", None)  # meaningless on a preflight
    headers["Access-Control-Allow-Methods"] = ", ".join(ALLOWED_METHODS)
    headers["Access-Control-Allow-Headers"] = ", ".join(ALLOWED_HEADERS)
    headers["Access-Control-Max-Age"] = str(MAX_AGE_S)
    return headers


def _is_preflight(request: web.Request) -> bool:
    return (
        request.method == "OPTIONS"
        and request.path.startswith(PREFIX)
        and "Origin" in request.headers
        and "Access-Control-Request-Method" in request.headers
    )


@web.middleware
async def cors_preflight(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answers preflights for /xapi/ before authentication and the version check."""
    if not _is_preflight(request):
        return await handler(request)
    allowed = request.app[keys.SETTINGS].cors_origins
    try:
        headers = preflight_headers(
            request.headers.get("Origin"),
            request.headers["Access-Control-Request-Method"],
            request.headers.get("Access-Control-Request-Headers", ""),
            allowed,
        )
    except PreflightRefused as exc:
        return error_response(403, f"CORS preflight refused: {exc}")
    return web.Response(status=204, headers=headers)


async def add_cors_headers(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: CORS headers on every /xapi/ response, errors and streams included."""
    if not request.path.startswith(PREFIX) or _is_preflight(request):
        return
    allowed = request.app[keys.SETTINGS].cors_origins
    if not allowed:
        return
    _merge(response.headers, cors_headers(request.headers.get("Origin"), allowed))


def _merge(target: CIMultiDict[str], extra: Mapping[str, str]) -> None:
    for name, value in extra.items():
        if name != "Vary" or "Vary" not in target:
            target[name] = value
        elif "origin" not in target["Vary"].lower():
            target["Vary"] = target["Vary"] + ", Origin"
