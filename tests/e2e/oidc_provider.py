"""A small OpenID Connect provider on loopback for the console's sign-in tests:
discovery, JWKS, an authorization endpoint that signs the configured user in at
once (no login form) and a token endpoint that checks the code (once), the
redirect URI, the client's secret and the PKCE verifier, and returns an ID
token signed with a generated RSA key.  ``id_token_changes`` alters the next ID
tokens' claims (the negative tests: a wrong nonce, audience, expiry)."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, AsyncIterator
from urllib.parse import urlencode

import jwt
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives.asymmetric import rsa

CLIENT_ID = "lrs-console"
CLIENT_SECRET = "console-client-secret"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
JWK = {**json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(KEY.public_key())), "kid": "idp-1", "use": "sig", "alg": "RS256"}


@dataclass
class Grant:
    client_id: str
    redirect_uri: str
    nonce: str
    challenge: str
    used: bool = False


@dataclass
class Provider:
    issuer: str = ""
    user: dict[str, Any] = field(default_factory=lambda: {
        "sub": "official-7", "preferred_username": "Nguyễn Thị Lan", "tenant": "default", "scope": "openid xapi:all",
    })
    id_token_changes: dict[str, Any] = field(default_factory=dict)
    grants: dict[str, Grant] = field(default_factory=dict)
    token_requests: int = 0

    def console_settings(self, provider_name: str) -> dict[str, Any]:
        """The settings of an LRS whose console signs in through this provider."""
        from lrs.oidc_settings import ConsoleOidcSettings, OidcSettings

        return {
            "oidc": OidcSettings(issuer=self.issuer, audiences=("lrs",), jwks_url=f"{self.issuer}/jwks"),
            "console_oidc": ConsoleOidcSettings(client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
                                                provider_name=provider_name),
        }

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/.well-known/openid-configuration", self.discovery)
        app.router.add_get("/jwks", self.jwks)
        app.router.add_get("/authorize", self.authorize)
        app.router.add_post("/token", self.token)
        return app

    async def discovery(self, _request: web.Request) -> web.Response:
        return web.json_response({
            "issuer": self.issuer, "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token", "jwks_uri": f"{self.issuer}/jwks",
            "response_types_supported": ["code"], "code_challenge_methods_supported": ["S256"],
            "id_token_signing_alg_values_supported": ["RS256"],
        })

    async def jwks(self, _request: web.Request) -> web.Response:
        return web.json_response({"keys": [JWK]})

    async def authorize(self, request: web.Request) -> web.StreamResponse:
        q = request.query
        if q.get("client_id") != CLIENT_ID or q.get("response_type") != "code" \
                or q.get("code_challenge_method") != "S256" or "openid" not in q.get("scope", "").split():
            return web.json_response({"error": "invalid_request"}, status=400)
        code = secrets.token_urlsafe(16)
        self.grants[code] = Grant(q["client_id"], q["redirect_uri"], q["nonce"], q["code_challenge"])
        raise web.HTTPFound(q["redirect_uri"] + "?" + urlencode({"code": code, "state": q["state"]}))

    async def token(self, request: web.Request) -> web.Response:
        self.token_requests += 1
        form = await request.post()
        expected = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if request.headers.get("Authorization") != expected:
            return web.json_response({"error": "invalid_client"}, status=401)
        grant = self.grants.get(str(form.get("code")))
        if form.get("grant_type") != "authorization_code" or grant is None:
            return web.json_response({"error": "invalid_grant", "error_description": "unknown code"}, status=400)
        if grant.used:
            return web.json_response({"error": "invalid_grant", "error_description": "code already used"}, status=400)
        grant.used = True
        verifier = str(form.get("code_verifier", ""))
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        if challenge != grant.challenge or form.get("redirect_uri") != grant.redirect_uri:
            return web.json_response({"error": "invalid_grant", "error_description": "PKCE or redirect"}, status=400)
        now = int(time.time())
        claims = {"iss": self.issuer, "aud": grant.client_id, "azp": grant.client_id, "iat": now, "exp": now + 300,
                  "nonce": grant.nonce, **self.user, **self.id_token_changes}
        id_token = jwt.encode(claims, KEY, algorithm="RS256", headers={"kid": "idp-1"})
        return web.json_response({"access_token": secrets.token_urlsafe(16), "token_type": "Bearer",
                                  "expires_in": 300, "id_token": id_token})


async def serve_provider() -> AsyncIterator[Provider]:
    """The provider on a loopback port; its issuer is its base URL (the
    ``provider`` fixture of tests/conftest.py)."""
    provider = Provider()
    async with TestServer(provider.app(), host="127.0.0.1") as server:
        provider.issuer = str(server.make_url("")).rstrip("/")
        yield provider
