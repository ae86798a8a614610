"""Middlewares: request context and log line, error mapping, authentication, xAPI version."""

from __future__ import annotations

import itertools
import os
import re
import time
from datetime import datetime
from typing import Awaitable, Callable

import msgspec
import structlog
from aiohttp import web

from lrs.auth import AuthError, Credential, parse_basic_auth, scopes_needed
from lrs.eventlog import format_stored
from lrs.http import keys
from lrs.http.bearer import authenticate_bearer
from lrs.http.metrics import HTTP_LATENCY_BY, HTTP_REQUESTS_BY
from lrs.http.throttle import authenticate_basic
from lrs.logs import bind_request_context, info_written, log_request
from lrs.oidc.claims import bearer_token
from lrs.store.availability import storage_unavailable
from lrs.xapi.errors import XapiError
from lrs.xapi.versions import SUPPORTED_VERSIONS, negotiate_version

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

log = structlog.get_logger("lrs.http")

CREDENTIAL = web.RequestKey("credential", Credential)
XAPI_VERSION = web.RequestKey("xapi_version", str)
LOG_FIELDS = web.RequestKey("log_fields", dict)
REQUEST_ID = web.RequestKey("request_id", str)

# Seconds a 503 of this middleware (storage unavailable, or the service not
# ready to answer) asks the client to wait; overload says its own
# (lrs.http.shedding).
RETRY_AFTER_UNAVAILABLE_S = "5"

# Endpoints reachable without credentials: the spec's About resource and the
# operational probes (they reveal nothing about stored data).
PUBLIC_PATHS = frozenset({"/xapi/about", "/xapi/openapi.json", "/health", "/ready"})
STATEMENTS_PATH = "/xapi/statements"
# The console signs in with its own form and session (lrs.console.guard), then
# applies the same scope rule.
CONSOLE_PREFIX = "/console"
VERSION_EXEMPT = frozenset({"/xapi/about", "/xapi/openapi.json"})

_json_encode = msgspec.json.Encoder().encode


def error_response(status: int, message: str, path: str | None = None) -> web.Response:
    payload: dict[str, object] = {"error": message, "status": status}
    if path:
        payload["path"] = path
    return web.Response(status=status, body=_json_encode(payload), content_type="application/json")


# Path parts that name a learner (the competency API's and the console's
# learner pages): logged as the route's placeholder, since a log line lies
# outside the store, where an erasure (docs/privacy.md) cannot reach it.
PERSONAL_PATH_PARTS = frozenset({"learner"})


_ROUTE_PART = re.compile(r"\{(\w+)(?::[^}]*)?\}")


def _logged_path(request: web.Request) -> str:
    """``request.path``, or for a route with a part naming a learner the
    route with that part left as ``{learner}`` and the others filled in."""
    info = request.match_info
    resource = info.route.resource
    if resource is None or not PERSONAL_PATH_PARTS & info.keys():
        return request.path
    return _ROUTE_PART.sub(
        lambda m: m.group(0) if m.group(1) in PERSONAL_PATH_PARTS else info.get(m.group(1), m.group(0)),
        resource.canonical,
    )


class RequestIds:
    """Ids for requests that come without an ``X-Request-ID``: 32 hex digits
    (as ``uuid4().hex`` had), a random prefix drawn once per process followed
    by a counter, so making one costs no system call (``uuid4`` read the
    kernel's random source for every request).  Unique across processes by
    the prefix; a child forked from this process draws a prefix of its own."""

    def __init__(self) -> None:
        self.reseed()

    def reseed(self) -> None:
        self._prefix = os.urandom(8).hex()
        self._counter = itertools.count()

    def __call__(self) -> str:
        return f"{self._prefix}{next(self._counter):016x}"


new_request_id = RequestIds()
os.register_at_fork(after_in_child=new_request_id.reseed)


def _route_name(request: web.Request) -> str:
    info = request.match_info.route.resource
    return info.canonical if info is not None else "unmatched"


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Binds a request id, writes one log line per request and records metrics."""
    request_id = request.headers.get("X-Request-ID") or new_request_id()
    request[REQUEST_ID] = request_id
    bind_request_context(request_id=request_id)
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        elapsed = time.perf_counter() - started
        route = _route_name(request)
        HTTP_REQUESTS_BY(request.method, route, str(status)).inc()
        HTTP_LATENCY_BY(request.method, route).observe(elapsed)
        if info_written():  # at warning and above the line's fields are not even gathered
            credential: Credential | None = request.get(CREDENTIAL)
            fields = {
                "method": request.method,
                "path": _logged_path(request),
                "status": status,
                "duration_ms": round(elapsed * 1000, 3),
                "credential": credential.key if credential else None,
                "tenant": credential.tenant if credential else None,
            }
            extra = request.get(LOG_FIELDS)
            if extra:
                fields.update(extra)
            log_request(fields)
    return response


class _StoredText:
    """``format_stored`` of the last moment asked for, remembered: the
    consistent-through time changes once a group commit, not once a response."""

    __slots__ = ("moment", "text")

    def __init__(self) -> None:
        self.moment: datetime | None = None
        self.text = ""

    def __call__(self, moment: datetime) -> str:
        if moment != self.moment:  # equal aware moments are one instant: one text
            self.text = format_stored(moment)
            self.moment = moment
        return self.text


_consistent_through_text = _StoredText()


async def common_headers(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: headers every response carries, errors and streamed ones included.

    Every xAPI response names the version (Communication 3.3): the negotiated
    one, or, where none was negotiated (About, a 401, a missing or bad version
    header), the latest patch of the 1.0 family when the client asked for a
    1.0.x version, and otherwise the latest version this LRS supports (2.0.0).
    """
    request_id = request.get(REQUEST_ID)
    if request_id is not None:
        response.headers["X-Request-ID"] = request_id
    if request.path.startswith("/xapi/"):
        version = request.get(XAPI_VERSION) or _version_family(request.headers.get("X-Experience-API-Version"))
        response.headers["X-Experience-API-Version"] = version
    if request.path == STATEMENTS_PATH and "X-Experience-API-Consistent-Through" not in response.headers:
        writer = request.app.get(keys.WRITER)
        if writer is not None:
            response.headers["X-Experience-API-Consistent-Through"] = _consistent_through_text(
                writer.consistent_through()
            )


def _version_family(header: str | None) -> str:
    if header is not None and header.strip().startswith("1.0"):
        return "1.0.3"
    return SUPPORTED_VERSIONS[-1]



def _too_large_path(request: web.Request) -> str:
    """What a 413 names: the declared ``Content-Length`` when it was refused
    before the body was read, else ``$`` (the body read ran past the limit)."""
    length = request.content_length
    return "Content-Length" if length is not None and length > request.client_max_size else "$"


@web.middleware
async def error_mapping(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turns domain errors into 4xx answers that name the problem; never leaks a traceback."""
    try:
        return await handler(request)
    except XapiError as exc:
        request.setdefault(LOG_FIELDS, {})["error"] = str(exc) if exc.logged is None else exc.logged
        response = error_response(exc.status, exc.message, exc.path)
        if exc.status == 503:
            # Every refusal of "not now" says when to come back (a projection
            # behind or rebuilding, frameworks unreadable, a state under other rules).
            response.headers["Retry-After"] = RETRY_AFTER_UNAVAILABLE_S
        return response
    except AuthError as exc:
        response = error_response(401, "authentication required: " + str(exc))
        response.headers["WWW-Authenticate"] = exc.challenge
        return response
    except web.HTTPException as exc:
        if exc.status >= 400 and exc.content_type != "application/json":
            default_text = f"{exc.status}: {exc.reason}"
            message = exc.reason if not exc.text or exc.text == default_text else exc.text
            response = error_response(exc.status, message, _too_large_path(request) if exc.status == 413 else None)
            for name, value in exc.headers.items():
                if name.lower() not in {"content-type", "content-length"}:
                    response.headers[name] = value
            return response
        raise
    except Exception as exc:
        if storage_unavailable(exc):
            log.error("storage unavailable", method=request.method, path=request.path, error=repr(exc))
            response = error_response(
                503,
                f"storage is unavailable ({type(exc).__name__}); retry later. A write that failed this way "
                "may or may not have been committed: retrying it with the same statement ids is safe",
            )
            response.headers["Retry-After"] = RETRY_AFTER_UNAVAILABLE_S
            return response
        log.exception("unhandled error", method=request.method, path=request.path)
        return error_response(500, "internal error; see the server log for the request id")


@web.middleware
async def authentication(request: web.Request, handler: Handler) -> web.StreamResponse:
    if (
        request.path in PUBLIC_PATHS
        or request.method == "OPTIONS"
        or request.path == CONSOLE_PREFIX
        or request.path.startswith(CONSOLE_PREFIX + "/")
    ):
        return await handler(request)
    header = request.headers.get("Authorization")
    token = bearer_token(header)
    if token is not None:
        credential = await authenticate_bearer(request.app, token)
    else:
        key, secret = parse_basic_auth(header)
        credential = await authenticate_basic(request, request.app[keys.AUTHENTICATOR], key, secret)
    request[CREDENTIAL] = credential
    # Scopes (lrs.auth.RESOURCE_SCOPES), checked once here for every route;
    # unmatched paths fall through to the router's 404/405.
    resource = request.match_info.route.resource
    if resource is not None and not credential.may(request.method, resource.canonical):
        needed = scopes_needed(request.method, resource.canonical)
        raise XapiError(
            403,
            f"credential {credential.key!r} has no scope that allows {request.method} {resource.canonical}; "
            f"it needs {'scope' if len(needed) == 1 else 'one of the scopes'} {', '.join(needed)}",
        )
    return await handler(request)


@web.middleware
async def xapi_version(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Requires X-Experience-API-Version on xAPI resources (``common_headers`` echoes it)."""
    if not request.path.startswith("/xapi/") or request.path in VERSION_EXEMPT:
        return await handler(request)
    version = negotiate_version(request.headers.get("X-Experience-API-Version"))
    request[XAPI_VERSION] = version
    return await handler(request)
