"""Signing in to the console through the OIDC issuer (``LRS_CONSOLE_OIDC_*``).

The authorization code flow (OpenID Connect Core 3.1) with PKCE (RFC 7636):

1. ``POST /console/signin/oidc`` (the sign-in page's button, with its CSRF
   token) makes an attempt: a random ``state``, ``nonce`` and PKCE verifier,
   kept in PostgreSQL for ten minutes (the state only as its SHA-256) and the
   state also in an HttpOnly cookie (SameSite=Lax: the issuer's redirect back
   is a cross-site navigation), then redirects to the issuer's authorization
   endpoint (from ``<issuer>/.well-known/openid-configuration``, or configured).
2. ``GET /console/signin/oidc/callback?code&state``: the state must equal the
   cookie's (else a page of another browser's sign-in: login CSRF) and name an
   attempt that is taken once (a replayed callback finds none); the code is
   exchanged at the token endpoint with the PKCE verifier; the ID token is
   verified by the bearer tokens' verifier (signature with the issuer's JWKS,
   issuer, expiry) with the client id as its audience and the attempt's nonce;
   its claims become a credential by the bearer tokens' rule
   (:func:`lrs.oidc.claims.credential_from_claims`: tenant, xAPI scopes);
   then the same server-side session as a credential sign-in.

The session cookie is SameSite=Strict, which a browser does not send on a
redirect chain that began at the issuer: the callback answers a small page
that moves on to the console by itself (``meta refresh``), a same-site step.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
import structlog
from aiohttp import web

from lrs.auth import AuthError
from lrs.console import guard, sessions
from lrs.console.render import render
from lrs.http import keys
from lrs.oidc import JwksUnavailable
from lrs.oidc_settings import ConsoleOidcSettings, OidcSettings

__all__ = ["add_routes", "pkce_challenge"]

log = structlog.get_logger("lrs.console.oidc")

DISCOVERY_CACHE_S = 3600.0
ATTEMPT_TTL_S = 600


class SignInRefused(Exception):
    """The sign-in cannot go on: ``key`` names the message of the catalogue the
    sign-in page shows (both languages), the exception's text the details."""

    def __init__(self, message: str, status: int = 401, key: str = "oidc_token_refused") -> None:
        super().__init__(message)
        self.status = status
        self.key = key if status < 500 else "oidc_unreachable"


@dataclass
class _Endpoints:
    authorization: str
    token: str
    read_at: float


ENDPOINTS: web.AppKey[dict[str, _Endpoints]] = web.AppKey("console_oidc_endpoints", dict)


def add_routes(console: web.Application) -> None:
    console[ENDPOINTS] = {}
    console.router.add_post("/signin/oidc", start, name="oidc_start")
    console.router.add_get("/signin/oidc/callback", callback, name="oidc_callback")


def pkce_challenge(verifier: str) -> str:
    """RFC 7636 4.2, S256: BASE64URL(SHA256(verifier)) without padding."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _configured(request: web.Request) -> tuple[ConsoleOidcSettings, OidcSettings]:
    settings = request.config_dict[keys.SETTINGS]
    if settings.console_oidc is None or settings.oidc is None:
        raise web.HTTPNotFound(text="signing in through OIDC is not configured (LRS_CONSOLE_OIDC_CLIENT_ID)")
    return settings.console_oidc, settings.oidc


def _redirect_uri(request: web.Request, client: ConsoleOidcSettings) -> str:
    if client.redirect_url:
        return client.redirect_url
    return f"{request.scheme}://{request.host}/console/signin/oidc/callback"


async def _endpoints(request: web.Request, client: ConsoleOidcSettings, issuer: str) -> _Endpoints:
    if client.authorization_url and client.token_url:
        return _Endpoints(client.authorization_url, client.token_url, 0.0)
    cache = request.app[ENDPOINTS]
    known = cache.get(issuer)
    if known is not None and time.monotonic() - known.read_at < DISCOVERY_CACHE_S:
        return known
    url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    try:
        async with aiohttp.ClientSession() as http, http.get(
            url, timeout=aiohttp.ClientTimeout(total=client.timeout_s)
        ) as response:
            if response.status != 200:
                raise SignInRefused(f"the provider's discovery document {url} answered {response.status}", 503)
            document = await response.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        raise SignInRefused(f"the provider cannot be reached ({url}): {exc!r}", 503) from None
    if not isinstance(document, dict) or document.get("issuer") != issuer:
        # OpenID Connect Discovery 4.3: the document must name the configured issuer.
        raise SignInRefused(f"the discovery document at {url} is not for issuer {issuer}", 503)
    authorization, token = document.get("authorization_endpoint"), document.get("token_endpoint")
    if not isinstance(authorization, str) or not isinstance(token, str):
        raise SignInRefused(f"the discovery document at {url} names no authorization or token endpoint", 503)
    cache[issuer] = _Endpoints(authorization, token, time.monotonic())
    return cache[issuer]


async def _refused(request: web.Request, refusal: SignInRefused) -> web.Response:
    from lrs.console.app import signin_page

    log.warning("console.oidc_signin_refused", reason=str(refusal))
    response = await signin_page(request, refusal.key, refusal.status, detail=str(refusal))
    response.del_cookie(guard.OIDC_COOKIE, path=guard.COOKIE_PATH)
    if refusal.status == 503:
        response.headers["Retry-After"] = "30"
    return response


async def start(request: web.Request) -> web.StreamResponse:
    from lrs.console.app import signin_page

    client, issuer = _configured(request)
    form = await request.post()
    csrf = form.get("csrf")
    if not guard.csrf_matches(csrf if isinstance(csrf, str) else None, request.cookies.get(guard.SIGNIN_CSRF_COOKIE)):
        return await signin_page(request, "bad_form", 403)
    next_raw = form.get("next")
    try:
        endpoints = await _endpoints(request, client, issuer.issuer)
    except SignInRefused as refusal:
        return await _refused(request, refusal)
    state, nonce, verifier = secrets.token_urlsafe(32), secrets.token_urlsafe(32), secrets.token_urlsafe(48)
    await sessions.open_attempt(
        request.config_dict[keys.POOL], state, nonce=nonce, code_verifier=verifier,
        next_path=guard.safe_next(next_raw if isinstance(next_raw, str) else None),
        now=datetime.now(timezone.utc), ttl_s=ATTEMPT_TTL_S,
    )
    query = {
        "response_type": "code",
        "client_id": client.client_id,
        "redirect_uri": _redirect_uri(request, client),
        "scope": " ".join(client.scopes),
        "state": state,
        "nonce": nonce,
        "code_challenge": pkce_challenge(verifier),
        "code_challenge_method": "S256",
    }
    separator = "&" if "?" in endpoints.authorization else "?"
    response = web.HTTPSeeOther(endpoints.authorization + separator + urlencode(query))
    response.set_cookie(
        guard.OIDC_COOKIE, state, max_age=ATTEMPT_TTL_S, path=guard.COOKIE_PATH, httponly=True, samesite="Lax",
        secure=guard.secure_cookie(request),
    )
    raise response


async def callback(request: web.Request) -> web.StreamResponse:
    client, issuer = _configured(request)
    try:
        claims, next_path = await _check_callback(request, client, issuer)
        credential = _credential(claims, issuer)
    except SignInRefused as refusal:
        return await _refused(request, refusal)
    settings = request.config_dict[keys.SETTINGS]
    token, _ = await sessions.open_session(
        request.config_dict[keys.POOL], credential.key, now=datetime.now(timezone.utc),
        ttl_s=settings.console_session_ttl_s, oidc_claims=claims,
    )
    log.info("console.oidc_signin", credential=credential.key, tenant=credential.tenant)
    response = render("signed_in.html", request, {"next": next_path})
    guard.set_cookie(response, request, guard.SESSION_COOKIE, token, max_age=int(settings.console_session_ttl_s))
    response.del_cookie(guard.OIDC_COOKIE, path=guard.COOKIE_PATH)
    response.del_cookie(guard.SIGNIN_CSRF_COOKIE, path=guard.COOKIE_PATH)
    return response


async def _check_callback(
    request: web.Request, client: ConsoleOidcSettings, issuer: OidcSettings
) -> tuple[dict[str, Any], str]:
    query = request.query
    if "error" in query:  # RFC 6749 4.1.2.1: the user declined, or the provider refused the request
        raise SignInRefused(
            f"the provider answered {query['error']}" + (f": {query['error_description']}"
                                                          if query.get("error_description") else ""),
            key="oidc_provider_error",
        )
    state, code = query.get("state"), query.get("code")
    if not state or not code:
        raise SignInRefused("the provider's answer has no 'code' or no 'state' parameter", 400, "oidc_bad_state")
    if not guard.csrf_matches(state, request.cookies.get(guard.OIDC_COOKIE)):
        raise SignInRefused(
            "the 'state' parameter is not the one this browser's sign-in sent", 400, "oidc_bad_state"
        )
    attempt = await sessions.take_attempt(request.config_dict[keys.POOL], state, now=datetime.now(timezone.utc))
    if attempt is None:
        raise SignInRefused("no open sign-in attempt has this state", 400, "oidc_attempt_gone")
    endpoints = await _endpoints(request, client, issuer.issuer)
    id_token = await _exchange(client, endpoints.token, code, _redirect_uri(request, client), attempt.code_verifier)
    verifier = request.config_dict.get(keys.BEARER_VERIFIER)
    if verifier is None:
        raise SignInRefused("the issuer's keys are not loaded (LRS_OIDC_ISSUER)", 503)
    try:
        claims = await verifier.verify_id_token(id_token, client.client_id, attempt.nonce)
    except JwksUnavailable as exc:
        raise SignInRefused(str(exc), 503) from None
    except AuthError as exc:
        raise SignInRefused(str(exc).replace("this LRS", "this console")) from None
    return claims, attempt.next_path


async def _exchange(client: ConsoleOidcSettings, token_url: str, code: str, redirect_uri: str, verifier: str) -> str:
    """The ID token for ``code`` (RFC 6749 4.1.3, RFC 7636 4.5)."""
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri, "code_verifier": verifier,
            "client_id": client.client_id}
    headers = {"Accept": "application/json"}
    if client.client_secret is not None:
        # client_secret_basic (RFC 6749 2.3.1): id and secret form-encoded before Basic.
        pair = f"{quote(client.client_id, safe='')}:{quote(client.client_secret, safe='')}"
        headers["Authorization"] = "Basic " + base64.b64encode(pair.encode("utf-8")).decode("ascii")
    try:
        async with aiohttp.ClientSession() as http, http.post(
            token_url, data=form, headers=headers,
            timeout=aiohttp.ClientTimeout(total=client.timeout_s),
        ) as response:
            body = await response.json(content_type=None)
            status = response.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise SignInRefused(f"the provider's token endpoint cannot be reached: {exc!r}", 503) from None
    except ValueError:
        raise SignInRefused("the provider's token endpoint did not answer JSON", 502) from None
    if status != 200:
        error = body.get("error") if isinstance(body, dict) else None
        description = body.get("error_description") if isinstance(body, dict) else None
        raise SignInRefused(
            f"the provider refused the authorization code ({status} {error or ''}"
            + (f": {description}" if description else "") + ")",
            key="oidc_code_refused",
        )
    id_token = body.get("id_token") if isinstance(body, dict) else None
    if not isinstance(id_token, str):
        raise SignInRefused("the provider's token response has no ID token (is 'openid' among the scopes?)", 502)
    return id_token


def _credential(claims: dict[str, Any], issuer: OidcSettings) -> Any:
    from lrs.oidc import credential_from_claims

    try:
        return credential_from_claims(claims, issuer)
    except AuthError as exc:
        raise SignInRefused(str(exc).replace("the token", "the ID token")) from None
