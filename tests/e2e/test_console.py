"""The console over HTTP (no browser): sign-in, sessions, CSRF, scopes,
tenants and languages, against the real service and PostgreSQL."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from lrs.auth import hash_secret
from lrs.config import Settings
from lrs.service import create_app
from lrs.store import credentials
from tests.e2e.conftest import KEY, SECRET, xapi_headers

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def settings_for(database_url: str, tmp_path: Path, **extra: Any) -> Settings:
    return Settings(
        database_url=database_url, frameworks_dir=tmp_path / "frameworks", nats_url=None, relay_enabled=False,
        bootstrap_credential=f"{KEY}:{SECRET}", **extra,
    )


@pytest.fixture
async def console(database_url: str, tmp_path: Path) -> AsyncIterator[TestClient]:
    app = create_app(settings_for(database_url, tmp_path), database_url=database_url, nats_url=None)
    async with TestServer(app) as server, TestClient(server) as client:
        yield client


async def add_credential(client: TestClient, key: str, secret: str, scopes: list[str], tenant: str = "default") -> None:
    from lrs.http import keys

    await credentials.insert_credential(
        client.app[keys.POOL], key=key, secret_hash=hash_secret(secret), tenant=tenant, scopes=scopes, name=key
    )


async def sign_in(client: TestClient, key: str = KEY, secret: str = SECRET, next_path: str = "/console/") -> Any:
    page = await client.get("/console/signin")
    assert page.status == 200
    token = CSRF.search(await page.text()).group(1)
    return await client.post(
        "/console/signin", data={"csrf": token, "key": key, "secret": secret, "next": next_path}, allow_redirects=False
    )


def form_token(html: str) -> str:
    return CSRF.search(html).group(1)


async def test_pages_need_a_session_and_sign_in_sets_a_strict_httponly_cookie(console: TestClient) -> None:
    response = await console.get("/console/units", allow_redirects=False)
    assert response.status == 303 and response.headers["Location"].startswith("/console/signin?next=")
    signed = await sign_in(console, next_path="/console/operations")
    assert signed.status == 303 and signed.headers["Location"] == "/console/operations"
    cookie = next(v for k, v in signed.headers.items() if k == "Set-Cookie" and v.startswith("lrs_console="))
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/console" in cookie
    for path in ("/console/units", "/console/operations", "/console/credentials", "/console/statements"):
        page = await console.get(path)
        assert page.status == 200, (path, await page.text())
        assert "text/html" in page.headers["Content-Type"]


async def test_the_bare_prefix_and_unknown_pages(console: TestClient) -> None:
    bare = await console.get("/console", allow_redirects=False)
    assert bare.status == 308 and bare.headers["Location"] == "/console/"
    missing = await console.get("/console/nowhere", headers={"Accept-Language": "vi"})
    assert missing.status == 404 and "Không tìm thấy" in await missing.text()


async def test_bad_secret_and_missing_csrf_are_refused(console: TestClient) -> None:
    assert (await sign_in(console, secret="wrong")).status == 401
    refused = await console.post("/console/signin", data={"key": KEY, "secret": SECRET}, allow_redirects=False)
    assert refused.status == 403
    assert (await console.get("/console/units", allow_redirects=False)).status == 303  # still signed out


async def test_failed_sign_ins_are_throttled_as_on_the_api(database_url: str, tmp_path: Path) -> None:
    app = create_app(
        settings_for(database_url, tmp_path, auth_failures_per_key=3), database_url=database_url, nats_url=None
    )
    async with TestServer(app) as server, TestClient(server) as client:
        for _ in range(3):
            assert (await sign_in(client, secret="wrong")).status == 401
        throttled = await sign_in(client, secret="wrong")
        assert throttled.status == 429 and int(throttled.headers["Retry-After"]) >= 1
        # The same key over the API is throttled too: the counters are the service's.
        api = await client.get("/xapi/statements", headers=xapi_headers(secret="wrong-again"))
        assert api.status == 429


async def test_open_redirects_are_not_followed(console: TestClient) -> None:
    signed = await sign_in(console, next_path="//evil.example.org/")
    assert signed.headers["Location"] == "/console/"


async def test_every_form_needs_the_session_csrf_token(console: TestClient) -> None:
    await sign_in(console)
    created = await console.post("/console/credentials", data={"scope": "all/read"})
    assert created.status == 403
    page = await console.get("/console/credentials")
    made = await console.post("/console/credentials", data={"csrf": form_token(await page.text()), "scope": "all/read"})
    assert made.status == 200
    assert re.search(r'id="created-secret">[^<]+<', await made.text())


async def test_read_only_credential_sees_but_cannot_change(console: TestClient) -> None:
    await add_credential(console, "viewer", "viewer-secret", ["all/read"])
    await sign_in(console, "viewer", "viewer-secret")
    page = await console.get("/console/credentials")
    assert page.status == 200
    html = await page.text()
    assert KEY in html and "/revoke" not in html and 'id="new-credential"' not in html  # no buttons shown
    # ...and the action itself is refused, exactly as the API refuses a write to all/read.
    revoke = await console.post(f"/console/credentials/{KEY}/revoke", data={"csrf": form_token(html)})
    assert revoke.status == 403
    assert (await console.get("/xapi/statements", headers=xapi_headers())).status == 200  # KEY still works
    assert (await console.get("/console/operations")).status == 200


async def test_write_only_credential_sees_no_competency_but_its_own_statements(console: TestClient) -> None:
    await add_credential(console, "writer", "writer-secret", ["statements/write", "statements/read/mine"])
    await sign_in(console, "writer", "writer-secret")
    assert (await console.get("/console/units")).status == 403
    assert (await console.get("/console/credentials")).status == 403
    assert (await console.get("/console/statements")).status == 200


async def test_revoking_ends_the_credentials_sessions(console: TestClient, database_url: str, tmp_path: Path) -> None:
    await add_credential(console, "temp", "temp-secret", ["all"])
    app2 = create_app(settings_for(database_url, tmp_path), database_url=database_url, nats_url=None)
    async with TestServer(app2) as server, TestClient(server) as other:
        await sign_in(other, "temp", "temp-secret")
        assert (await other.get("/console/units", allow_redirects=False)).status == 200
        await sign_in(console)
        page = await console.get("/console/credentials")
        revoked = await console.post("/console/credentials/temp/revoke", data={"csrf": form_token(await page.text())})
        assert revoked.status == 200 and "temp" in await revoked.text()
        assert (await other.get("/console/units", allow_redirects=False)).status == 303


async def test_tenants_are_isolated(console: TestClient) -> None:
    await add_credential(console, "other-admin", "other-secret", ["all"], tenant="other")
    posted = await console.post(
        "/xapi/statements", headers=xapi_headers(),
        json={"actor": {"mbox": "mailto:a@example.org"}, "verb": {"id": "http://example.org/v"},
              "object": {"id": "http://example.org/o"}},
    )
    (statement_id,) = await posted.json()
    await sign_in(console, "other-admin", "other-secret")
    listing = await (await console.get("/console/credentials")).text()
    assert KEY not in listing and "other-admin" in listing
    assert (await console.get(f"/console/statements/{statement_id}")).status == 404
    assert statement_id not in await (await console.get("/console/statements")).text()
    page = await console.get("/console/credentials")
    revoke = await console.post(f"/console/credentials/{KEY}/revoke", data={"csrf": form_token(await page.text())})
    assert revoke.status == 404


async def test_language_from_the_browser_and_the_switch(console: TestClient) -> None:
    page = await console.get("/console/signin", headers={"Accept-Language": "vi-VN,vi;q=0.9,en;q=0.5"})
    assert 'lang="vi"' in await page.text() and "Đăng nhập" in await page.text()
    page = await console.get("/console/signin", headers={"Accept-Language": "en-GB"})
    assert 'lang="en"' in await page.text()
    switched = await console.get("/console/language?to=vi&next=/console/signin", headers={"Accept-Language": "en"})
    assert switched.status == 200 and 'lang="vi"' in await switched.text()


async def test_statement_browser_filters_and_bad_filters(console: TestClient) -> None:
    for n in range(3):
        await console.post(
            "/xapi/statements", headers=xapi_headers(),
            json={"actor": {"mbox": f"mailto:s{n}@example.org"}, "verb": {"id": "http://example.org/v"},
                  "object": {"id": f"http://example.org/o{n}"}},
        )
    await sign_in(console)
    page = await (await console.get("/console/statements", params={"agent": '{"mbox":"mailto:s1@example.org"}'})).text()
    assert "http://example.org/o1" in page and "http://example.org/o2" not in page
    paged = await (await console.get("/console/statements", params={"limit": "2"})).text()
    assert paged.count('data-id="') == 2 and "more=" in paged
    bad = await console.get("/console/statements", params={"since": "yesterday"})
    assert bad.status == 400 and "since" in await bad.text()


async def test_console_can_be_turned_off(database_url: str, tmp_path: Path) -> None:
    app = create_app(settings_for(database_url, tmp_path, console_enabled=False), database_url=database_url, nats_url=None)
    async with TestServer(app) as server, TestClient(server) as client:
        assert (await client.get("/console/signin")).status in (401, 404)


async def test_an_api_error_shows_in_the_pages_language_with_its_detail(console: TestClient) -> None:
    assert (await sign_in(console)).status == 303
    for language, message, label in (("vi", "Không tìm thấy.", "chi tiết bằng tiếng Anh: "), ("en", "Not found.", "")):
        console.session.cookie_jar.update_cookies({"lrs_lang": language})
        page = await console.get("/console/units/nope")
        html = await page.text()
        assert page.status == 404 and f'<html lang="{language}">' in html
        problem = re.search(r'<p class="problem" role="alert">(.*?)</p>', html, re.S).group(1)
        # The page's own words first; the API's English text only as the detail, marked as English.
        assert problem.startswith(message), problem
        assert f'({label}<span lang="en" id="error-detail">no unit &#39;nope&#39;</span>)' in problem
    bad = await console.get("/console/units/mic/report", params={"by": "nothing"})
    assert bad.status == 400 and "not valid" in await bad.text()


async def test_a_competency_page_that_cannot_answer_now_says_when_to_come_back(database_url: str, tmp_path: Path) -> None:
    """A 503 page (here: the frameworks cannot be read) carries Retry-After, as the API's 503s do."""
    installed = tmp_path / "frameworks"
    installed.mkdir()
    (installed / "notes.json").write_text("[]", encoding="utf-8")
    app = create_app(settings_for(database_url, tmp_path), database_url=database_url, nats_url=None)
    async with TestServer(app) as server, TestClient(server) as client:
        assert (await sign_in(client)).status == 303
        for language, message in (("vi", "Hiện không thể hiển thị trang này"), ("en", "This page cannot be shown right now")):
            client.session.cookie_jar.update_cookies({"lrs_lang": language})
            for path in ("/console/units", "/console/units/mic", "/console/learners/someone"):
                page = await client.get(path)
                html = await page.text()
                assert page.status == 503 and message in html and f'<html lang="{language}">' in html, (path, html)
                assert int(page.headers["Retry-After"]) > 0, path
