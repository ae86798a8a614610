"""Signing in to the console through an OIDC provider: the authorization code
flow with PKCE, state and nonce, against a small real provider on loopback
(tests/e2e/oidc_provider.py) and the real service and PostgreSQL."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, AsyncIterator
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from aiohttp.test_utils import TestClient, TestServer

from lrs.http import keys
from lrs.service import create_app
from tests.e2e.oidc_provider import Provider
from tests.e2e.test_console import CSRF, settings_for

PROVIDER_NAME = "Cổng định danh quốc gia"


@pytest.fixture
async def console(database_url: str, tmp_path: Path, provider: Provider) -> AsyncIterator[TestClient]:
    settings = settings_for(database_url, tmp_path, **provider.console_settings(PROVIDER_NAME))
    app = create_app(settings, database_url=database_url, nats_url=None)
    async with TestServer(app, host="127.0.0.1") as server, TestClient(server) as client:
        yield client


async def start(console: TestClient, next_path: str = "/console/operations") -> str:
    """Press the sign-in page's button; the provider's authorization URL it redirects to."""
    page = await console.get("/console/signin", params={"next": next_path})
    html = await page.text()
    assert f"Sign in with {PROVIDER_NAME}" in html
    started = await console.post(
        "/console/signin/oidc", data={"csrf": CSRF.search(html).group(1), "next": next_path}, allow_redirects=False
    )
    assert started.status == 303, await started.text()
    return started.headers["Location"]


async def at_provider(console: TestClient, authorize_url: str) -> str:
    """The provider signs the user in; the console's callback (path and query) it redirects to."""
    async with console.session.get(authorize_url, allow_redirects=False) as answer:
        assert answer.status == 302, await answer.text()
        location = urlsplit(answer.headers["Location"])
        assert f"{location.scheme}://{location.netloc}" == str(console.make_url("")).rstrip("/")
        return f"{location.path}?{location.query}"


async def sessions_count(console: TestClient) -> int:
    return await console.app[keys.POOL].fetchval("SELECT count(*) FROM console_sessions")


async def test_the_full_redirect_flow_signs_in_with_the_mapped_scopes_and_tenant(
    console: TestClient, provider: Provider
) -> None:
    page = await console.get("/console/signin")
    html = await page.text()
    # Follow every redirect: console -> provider -> console's callback.
    signed = await console.post(
        "/console/signin/oidc", data={"csrf": CSRF.search(html).group(1), "next": "/console/operations"}
    )
    assert signed.status == 200 and signed.url.path == "/console/signin/oidc/callback"
    assert '<meta http-equiv="refresh" content="0;url=/console/operations">' in await signed.text()
    cookie = next(v for k, v in signed.history[0].headers.items() if k == "Set-Cookie" and "lrs_console_oidc=" in v)
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    session_cookie = next(v for k, v in signed.headers.items() if k == "Set-Cookie" and v.startswith("lrs_console="))
    assert "HttpOnly" in session_cookie and "SameSite=Strict" in session_cookie

    operations = await console.get("/console/operations", allow_redirects=False)
    assert operations.status == 200
    text = await operations.text()
    assert "Nguyễn Thị Lan · default" in text
    # The PKCE challenge the provider saw was S256 of the verifier it got (checked by its token endpoint).
    assert provider.token_requests == 1 and all(g.used for g in provider.grants.values())
    # xapi:all maps to the `all` scope, as a bearer token's would: this session may create credentials.
    credentials = await console.get("/console/credentials")
    assert credentials.status == 200 and 'id="new-credential"' in await credentials.text()
    # The session stores the verified claims, not a credential row.
    row = await console.app[keys.POOL].fetchrow("SELECT credential_key, oidc_claims->>'sub' AS sub FROM console_sessions")
    assert tuple(row) == ("oidc:official-7", "official-7")


async def test_a_read_only_user_sees_but_cannot_change(console: TestClient, provider: Provider) -> None:
    provider.user = {**provider.user, "scope": "openid xapi:all/read"}
    callback = await at_provider(console, await start(console))
    assert (await console.get(callback)).status == 200
    page = await console.get("/console/credentials")
    html = await page.text()
    assert page.status == 200 and "/revoke" not in html and 'id="new-credential"' not in html
    refused = await console.post("/console/credentials", data={"csrf": CSRF.search(html).group(1), "scope": "all"})
    assert refused.status == 403


async def test_a_state_that_is_not_this_browsers_is_refused(console: TestClient) -> None:
    callback = urlsplit(await at_provider(console, await start(console)))
    query = {k: v[0] for k, v in parse_qs(callback.query).items()}
    forged = await console.get(f"{callback.path}?{urlencode({**query, 'state': 'another-browsers-state'})}")
    assert forged.status == 400
    assert "does not belong to this browser&#39;s sign-in" in await forged.text()
    assert await sessions_count(console) == 0
    assert (await console.get("/console/units", allow_redirects=False)).status == 303


async def test_a_replayed_code_is_refused(console: TestClient, provider: Provider) -> None:
    callback = await at_provider(console, await start(console))
    assert (await console.get(callback)).status == 200
    console.session.cookie_jar.clear()  # another browser, or this one after signing out
    # The same callback again: this browser holds no attempt...
    again = await console.get(callback)
    assert again.status == 400 and "does not belong to this browser" in await again.text()
    # ...and one that still held the attempt's state cookie finds it used.
    used_state = parse_qs(urlsplit(callback).query)["state"][0]
    console.session.cookie_jar.update_cookies({"lrs_console_oidc": used_state}, console.make_url("/console/"))
    again = await console.get(callback)
    assert again.status == 400 and "already used" in await again.text()
    # The old code with a fresh attempt's state: the provider refuses it (used once).
    fresh = urlsplit(await start(console))
    state = parse_qs(fresh.query)["state"][0]
    old_code = parse_qs(urlsplit(callback).query)["code"][0]
    replayed = await console.get("/console/signin/oidc/callback", params={"code": old_code, "state": state})
    assert replayed.status == 401
    text = await replayed.text()
    assert "the provider refused the authorization code" in text and "code already used" in text
    assert await sessions_count(console) == 1  # the first sign-in only


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"nonce": "a-nonce-of-another-sign-in"}, "nonce is not the one this sign-in sent"),
        ({"aud": "another-client", "azp": "another-client"}, "not meant for this console"),
        ({"exp": int(time.time()) - 3600, "iat": int(time.time()) - 4000}, "the ID token has expired"),
        ({"iss": "https://impostor.example.org"}, "was not issued by"),
        ({"tenant": None}, "naming the tenant"),
    ],
    ids=["bad-nonce", "wrong-audience", "expired", "wrong-issuer", "no-tenant"],
)
async def test_an_id_token_that_fails_a_check_is_refused(
    console: TestClient, provider: Provider, changes: dict[str, Any], message: str
) -> None:
    provider.id_token_changes = changes
    response = await console.get(await at_provider(console, await start(console)))
    text = await response.text()
    assert response.status == 401, text
    assert "Sign-in refused: the provider&#39;s ID token did not pass the checks." in text and message in text
    assert await sessions_count(console) == 0
    assert (await console.get("/console/units", allow_redirects=False)).status == 303


async def test_the_provider_declining_and_the_vietnamese_page(console: TestClient) -> None:
    authorize = urlsplit(await start(console))
    state = parse_qs(authorize.query)["state"][0]
    declined = await console.get(
        "/console/signin/oidc/callback", params={"error": "access_denied", "state": state},
        headers={"Accept-Language": "vi"},
    )
    text = await declined.text()
    assert declined.status == 401 and "Nhà cung cấp đã từ chối đăng nhập." in text and "access_denied" in text
    assert f"Đăng nhập bằng {PROVIDER_NAME}" in text


async def test_the_button_needs_the_forms_token_and_is_absent_without_oidc(
    console: TestClient, database_url: str, tmp_path: Path
) -> None:
    refused = await console.post("/console/signin/oidc", data={"next": "/console/"}, allow_redirects=False)
    assert refused.status == 403
    plain = create_app(settings_for(database_url, tmp_path), database_url=database_url, nats_url=None)
    async with TestServer(plain) as server, TestClient(server) as client:
        assert "/console/signin/oidc" not in await (await client.get("/console/signin")).text()
        assert (await client.post("/console/signin/oidc", data={})).status == 404
