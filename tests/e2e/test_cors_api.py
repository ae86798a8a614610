"""CORS on the xAPI API through the real service (in process, real PostgreSQL)."""

from __future__ import annotations

from pathlib import Path
from typing import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from lrs.config import Settings
from lrs.service import create_app
from tests.e2e.conftest import KEY, SECRET, xapi_headers

LMS = "http://lms.example.org:8000"
STATEMENT = {
    "actor": {"mbox": "mailto:cors@example.org"},
    "verb": {"id": "http://adlnet.gov/expapi/verbs/experienced"},
    "object": {"id": "http://example.org/cors"},
}


async def _client(database_url: str, tmp_path: Path, origins: tuple[str, ...]) -> AsyncIterator[TestClient]:
    settings = Settings(
        database_url=database_url, frameworks_dir=tmp_path / "frameworks", nats_url=None,
        relay_enabled=False, projections_enabled=False, bootstrap_credential=f"{KEY}:{SECRET}",
        cors_origins=origins, console_enabled=False,
    )
    app = create_app(settings, database_url=database_url, nats_url=None)
    async with TestServer(app) as server, TestClient(server) as client:
        yield client


@pytest.fixture
async def listed(database_url: str, tmp_path: Path) -> AsyncIterator[TestClient]:
    async for client in _client(database_url, tmp_path, (LMS,)):
        yield client


@pytest.fixture
async def star(database_url: str, tmp_path: Path) -> AsyncIterator[TestClient]:
    async for client in _client(database_url, tmp_path, ("*",)):
        yield client


def preflight(method: str = "POST", origin: str = LMS) -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "authorization,content-type,x-experience-api-version",
    }


async def test_preflight_needs_no_credentials_or_version(listed: TestClient) -> None:
    for path in ("/xapi/statements", "/xapi/activities/state", "/xapi/about"):
        response = await listed.options(path, headers=preflight())
        assert response.status == 204, await response.text()
        assert response.headers["Access-Control-Allow-Origin"] == LMS
        assert response.headers["Access-Control-Allow-Credentials"] == "true"
        assert "X-Experience-API-Version" in response.headers["Access-Control-Allow-Headers"]
        assert "Authorization" in response.headers["Access-Control-Allow-Headers"]


async def test_preflight_from_an_unlisted_origin_is_refused(listed: TestClient) -> None:
    response = await listed.options("/xapi/statements", headers=preflight(origin="http://evil.example.org"))
    assert response.status == 403
    assert "Access-Control-Allow-Origin" not in response.headers
    assert "http://evil.example.org" in (await response.json())["error"]


async def test_preflight_without_configured_origins_is_refused(client: TestClient) -> None:
    response = await client.options("/xapi/statements", headers=preflight())
    assert response.status == 403
    assert "LRS_CORS_ORIGINS" in (await response.json())["error"]


async def test_actual_responses_expose_the_xapi_headers(listed: TestClient) -> None:
    headers = {**xapi_headers(), "Origin": LMS}
    posted = await listed.post("/xapi/statements", json=STATEMENT, headers=headers)
    assert posted.status == 200
    got = await listed.get("/xapi/statements", headers=headers)
    assert got.status == 200
    assert got.headers["Access-Control-Allow-Origin"] == LMS
    exposed = got.headers["Access-Control-Expose-Headers"]
    for name in ("X-Experience-API-Version", "X-Experience-API-Consistent-Through", "ETag", "Last-Modified"):
        assert name in exposed
    assert "Origin" in got.headers["Vary"]


async def test_errors_carry_cors_headers_so_scripts_can_read_them(listed: TestClient) -> None:
    response = await listed.get("/xapi/statements", headers={"Origin": LMS, "X-Experience-API-Version": "1.0.3"})
    assert response.status == 401
    assert response.headers["Access-Control-Allow-Origin"] == LMS


async def test_unlisted_origin_gets_no_allow_origin(listed: TestClient) -> None:
    response = await listed.get("/xapi/about", headers={"Origin": "http://evil.example.org"})
    assert response.status == 200
    assert "Access-Control-Allow-Origin" not in response.headers


async def test_star_allows_any_origin_without_credentials(star: TestClient) -> None:
    response = await star.options("/xapi/statements", headers=preflight(origin="http://other.example.org"))
    assert response.status == 204
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in response.headers
    got = await star.get("/xapi/statements", headers={**xapi_headers(), "Origin": "http://other.example.org"})
    assert got.headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in got.headers


async def test_document_etag_is_exposed(listed: TestClient) -> None:
    params = {"activityId": "http://example.org/cors", "agent": '{"mbox":"mailto:cors@example.org"}', "stateId": "s"}
    headers = {**xapi_headers(), "Origin": LMS}
    put = await listed.put("/xapi/activities/state", params=params, json={"a": 1}, headers=headers)
    assert put.status == 204
    got = await listed.get("/xapi/activities/state", params=params, headers=headers)
    assert got.headers["ETag"] and "ETag" in got.headers["Access-Control-Expose-Headers"]
