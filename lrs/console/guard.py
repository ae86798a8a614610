"""Who may see and do what in the console: sessions, scopes, CSRF, language.

The ``console_guard`` middleware runs for every console request:

* it picks the language (:mod:`lrs.console.i18n`);
* outside the sign-in page and static files it finds the session from the
  cookie and reads its credential again (a revoked or unknown credential ends
  the session), so the console never trusts more than the API would;
* it checks the credential's scopes with the same rule as the API
  (:meth:`lrs.auth.Credential.may`): a console page that shows what an API
  resource answers is governed by that resource (:data:`GOVERNED_BY`), any
  other console route by its own path, which :data:`lrs.auth.RESOURCE_SCOPES`
  does not list, so reading it needs ``all/read`` and changing anything ``all``;
* every POST must carry the session's CSRF token (the sign-in form, which has
  no session yet, a token that is also in a cookie: double submit).
"""

from __future__ import annotations

import hmac
import secrets
import time
from datetime import datetime, timezone
from typing import Any

from aiohttp import web

from lrs.auth import AuthError, Credential
from lrs.console import i18n, sessions
from lrs.http import keys
from lrs.http.middleware import CREDENTIAL, Handler
from lrs.oidc.claims import credential_from_claims
from lrs.store import credentials as credential_store

SESSION_COOKIE = "lrs_console"
SIGNIN_CSRF_COOKIE = "lrs_console_signin"
COOKIE_PATH = "/console"
PUBLIC_ROUTES = frozenset({"signin", "signin_post", "oidc_start", "oidc_callback", "language", "static"})
OIDC_COOKIE = "lrs_console_oidc"  # the sign-in attempt's state, for the issuer's redirect back (SameSite=Lax)

SESSION = web.RequestKey("console_session", sessions.Session)
LANGUAGE = web.RequestKey("console_language", str)
# How far behind the competency projection is, when a page shows figures that are not current.
FRESHNESS: web.RequestKey[Any] = web.RequestKey("console_freshness")

# Console route name -> the API resource whose scopes govern it (reads only).
GOVERNED_BY: dict[str, str] = {
    "units": "/competency/units",
    "unit": "/competency/units/{unit}/summary",
    "unit_report": "/competency/units/{unit}/learners",
    "learner": "/competency/learners/{learner}",
    "trail": "/competency/learners/{learner}/trail",
    "operations": "/metrics",
    "statements": "/xapi/statements",
    "statement": "/xapi/statements",
}


def may(credential: Credential, method: str, route_name: str, canonical: str) -> bool:
    """The API's scope rule applied to a console route."""
    governing = GOVERNED_BY.get(route_name)
    if governing is not None and method in ("GET", "HEAD"):
        return credential.may(method, governing)
    return credential.may(method, canonical)


def may_open(credential: Credential, route_name: str, method: str = "GET") -> bool:
    """For menus and buttons: whether ``route_name`` would be allowed."""
    return may(credential, method, route_name, f"/console/{route_name}")


def csrf_matches(sent: str | None, expected: str | None) -> bool:
    return bool(sent) and bool(expected) and hmac.compare_digest(sent.encode(), expected.encode())


def secure_cookie(request: web.Request) -> bool:
    return request.secure


def set_cookie(response: web.StreamResponse, request: web.Request, name: str, value: str, max_age: int | None) -> None:
    response.set_cookie(
        name, value, max_age=max_age, path=COOKIE_PATH, httponly=True, samesite="Strict",
        secure=secure_cookie(request),
    )


@web.middleware
async def server_timing(request: web.Request, handler: Handler) -> web.StreamResponse:
    """``Server-Timing: app;dur=<ms>``: the time the console spent on the page
    (session, queries, rendering), readable in the browser's developer tools
    and by ``bench/console_tree.py``."""
    started = time.perf_counter()
    response = await handler(request)
    if not response.prepared:
        response.headers["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.1f}"
    return response


@web.middleware
async def console_guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    request[LANGUAGE] = i18n.choose_language(request.cookies.get(i18n.COOKIE), request.headers.get("Accept-Language"))
    route = request.match_info.route
    name = route.name or ""
    if route.resource is None:  # no console page at this path
        if request.path == COOKIE_PATH:
            raise web.HTTPPermanentRedirect(COOKIE_PATH + "/")
        return render_message(request, 404, key="not_found")
    if name in PUBLIC_ROUTES:
        return await handler(request)
    now = datetime.now(timezone.utc)
    pool = request.config_dict[keys.POOL]
    token = request.cookies.get(SESSION_COOKIE)
    session = await sessions.find_session(pool, token, now=now) if token else None
    credential = _oidc_credential(request, session) if session is not None and session.oidc_claims is not None \
        else await _credential(pool, session)
    if session is None or credential is None:
        next_path = request.path_qs if request.method == "GET" else "/console/"
        raise web.HTTPSeeOther(f"/console/signin?{_next_query(next_path)}")
    request[SESSION] = session
    request[CREDENTIAL] = credential
    if not may(credential, request.method, name, route.resource.canonical):
        return render_message(request, 403, key="forbidden")
    if request.method == "POST":
        form = await request.post()
        if not csrf_matches(_text(form.get("csrf")), session.csrf_token):
            return render_message(request, 403, key="bad_form")
    return await handler(request)


def render_message(request: web.Request, status: int, *, key: str) -> web.Response:
    from lrs.console.render import render_message as render  # render imports this module

    return render(request, status, key=key)


async def _credential(pool: Any, session: sessions.Session | None) -> Credential | None:
    if session is None:
        return None
    record = await credential_store.fetch_credential(pool, session.credential_key)
    if record is None or not record.active:
        return None
    return record.credential()


def _oidc_credential(request: web.Request, session: sessions.Session) -> Credential | None:
    """The credential of a session opened through the OIDC issuer: its claims
    mapped by the bearer tokens' rule, with today's settings (an LRS that no
    longer accepts the issuer ends such sessions)."""
    settings = request.config_dict[keys.SETTINGS].oidc
    if settings is None or session.oidc_claims is None:
        return None
    try:
        return credential_from_claims(session.oidc_claims, settings)
    except AuthError:
        return None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _next_query(path: str) -> str:
    from urllib.parse import urlencode

    return urlencode({"next": path})


def safe_next(raw: str | None) -> str:
    """Where to go after signing in: a console path only (no open redirect)."""
    if raw and raw.startswith("/console/") and not raw.startswith("//") and "\\" not in raw:
        return raw
    return "/console/"


def new_signin_token() -> str:
    return secrets.token_urlsafe(24)
