"""The console sub-app: templates, static files, sign-in and the page routes."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import aiohttp_jinja2
import jinja2
from aiohttp import web

from lrs.auth import AuthError
from lrs.console import guard, i18n, officials, oidc_signin, operators, sessions
from lrs.console.render import render, render_message
from lrs.console.paths import STATIC_DIR
from lrs.http import keys
from lrs.http.middleware import CREDENTIAL
from lrs.http.throttle import authenticate_basic

PREFIX = "/console"
PARENT: web.AppKey[web.Application] = web.AppKey("console_parent")


def register(app: web.Application) -> None:
    """Mount the console on the service (unless ``LRS_CONSOLE_ENABLED=false``)."""
    if not app[keys.SETTINGS].console_enabled:
        return
    app.add_subapp(PREFIX, create_console(app))  # /console itself is redirected to /console/ by the guard


def create_console(parent: web.Application) -> web.Application:
    console = web.Application(middlewares=[guard.server_timing, guard.console_guard])
    console[PARENT] = parent
    env = aiohttp_jinja2.setup(
        console,
        loader=jinja2.PackageLoader("lrs.console", "templates"),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
    )
    env.filters["percent"] = _percent
    # The pool, settings and authenticator live on the service: handlers read
    # them through request.config_dict, which chains the parent's keys.
    r = console.router
    r.add_static("/static/", STATIC_DIR, name="static")
    r.add_get("/signin", signin_page, name="signin")
    r.add_post("/signin", signin, name="signin_post")
    r.add_get("/language", switch_language, name="language")
    r.add_post("/signout", signout, name="signout")
    oidc_signin.add_routes(console)
    r.add_get("/", home, name="home")
    officials.add_routes(r)
    operators.add_routes(r)
    return console


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f}%"


# -- sign-in ------------------------------------------------------------------------


async def signin_page(
    request: web.Request, error: str | None = None, status: int = 200, detail: str = ""
) -> web.Response:
    token = guard.new_signin_token()
    settings = request.config_dict[keys.SETTINGS]
    oidc = settings.console_oidc if settings.oidc is not None else None
    response = render(
        "signin.html", request,
        {"signin_csrf": token, "error": error, "detail": detail, "next": guard.safe_next(request.query.get("next")),
         "oidc_provider": oidc.provider_name if oidc is not None else None},
        status=status,
    )
    guard.set_cookie(response, request, guard.SIGNIN_CSRF_COOKIE, token, max_age=3600)
    return response


async def signin(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    if not guard.csrf_matches(_text(form.get("csrf")), request.cookies.get(guard.SIGNIN_CSRF_COOKIE)):
        return await signin_page(request, "bad_form", 403)
    key, secret = _text(form.get("key")) or "", _text(form.get("secret")) or ""
    authenticator = request.config_dict[keys.AUTHENTICATOR]
    try:
        # The API's own check: the same scrypt hash, cache, failure throttle and 401 path.
        credential = await authenticate_basic(request, authenticator, key.strip(), secret)
    except AuthError:
        return await signin_page(request, "bad_signin", 401)
    except web.HTTPTooManyRequests as exc:
        response = await signin_page(request, "too_many_signins", 429)
        if "Retry-After" in exc.headers:
            response.headers["Retry-After"] = exc.headers["Retry-After"]
        return response
    settings = request.config_dict[keys.SETTINGS]
    token, _ = await sessions.open_session(
        request.config_dict[keys.POOL], credential.key, now=datetime.now(timezone.utc),
        ttl_s=settings.console_session_ttl_s,
    )
    response = web.HTTPSeeOther(guard.safe_next(_text(form.get("next"))))
    guard.set_cookie(response, request, guard.SESSION_COOKIE, token, max_age=int(settings.console_session_ttl_s))
    response.del_cookie(guard.SIGNIN_CSRF_COOKIE, path=guard.COOKIE_PATH)
    raise response


async def signout(request: web.Request) -> web.StreamResponse:
    token = request.cookies.get(guard.SESSION_COOKIE)
    if token:
        await sessions.close_session(request.config_dict[keys.POOL], token)
    response = web.HTTPSeeOther("/console/signin")
    response.del_cookie(guard.SESSION_COOKIE, path=guard.COOKIE_PATH)
    raise response


async def switch_language(request: web.Request) -> web.StreamResponse:
    """``?to=vi|en&next=/console/...``: remembers the choice in a cookie."""
    chosen = request.query.get("to")
    response = web.HTTPSeeOther(guard.safe_next(request.query.get("next")))
    if chosen in i18n.LANGUAGES:
        response.set_cookie(i18n.COOKIE, chosen, max_age=365 * 24 * 3600, path=guard.COOKIE_PATH, samesite="Lax")
    raise response


async def home(request: web.Request) -> web.StreamResponse:
    credential = request[CREDENTIAL]
    for name in ("units", "operations", "statements"):
        if guard.may_open(credential, name):
            raise web.HTTPSeeOther(f"/console/{name}")
    return render_message(request, 403, key="forbidden")


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None
