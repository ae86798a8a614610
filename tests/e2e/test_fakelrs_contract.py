"""The LRS behaviour the connectors' tests take from ``connectors/fakelrs.py``,
held against the real service too, so that the fake cannot drift from it.

Each test runs twice: against the fake's aiohttp app and against the real
``lrs`` app on PostgreSQL.  Only what the connectors rely on is here (Basic
auth, the version header, POSTed batches and their ids, idempotent resends,
409 on another content under the same id, a refused batch storing nothing,
GET oldest first with ``since``, ``limit`` and ``more``, the About
resource); what the fake does not pretend to do (validate statements, assign
ids) is not.
"""

from __future__ import annotations

from typing import Any, AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from connectors.fakelrs import FakeLrs
from connectors.framework.sink import error_message
from lrs.config import Settings
from lrs.service import create_app
from tests.conformance.support import new_id, stmt
from tests.e2e.conftest import KEY, SECRET, xapi_headers

STATEMENTS = "/xapi/statements"


@pytest.fixture(params=["fake", "real"])
def lrs_app(request: pytest.FixtureRequest, tmp_path: Any) -> web.Application:
    """The fake's app, or the real one on a fresh PostgreSQL database (a
    synchronous fixture, so that only the real one asks for a database)."""
    if request.param == "fake":
        return FakeLrs(key=KEY, secret=SECRET).app()
    database_url = request.getfixturevalue("database_url")
    settings = Settings(
        database_url=database_url, frameworks_dir=tmp_path / "frameworks", nats_url=None,
        relay_enabled=False, bootstrap_credential=f"{KEY}:{SECRET}", page_size_default=100, page_size_max=500,
    )
    return create_app(settings, database_url=database_url, nats_url=None)


@pytest.fixture
async def lrs(lrs_app: web.Application) -> AsyncIterator[TestClient]:
    async with TestServer(lrs_app) as server, TestClient(server) as client:
        yield client


def statement(**fields: Any) -> dict[str, Any]:
    return stmt(id=new_id(), **fields)


async def post(lrs: TestClient, body: Any, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    async with lrs.post(STATEMENTS, json=body, headers=xapi_headers() if headers is None else headers) as response:
        return response.status, await response.json(content_type=None)


async def get(lrs: TestClient, url: str) -> tuple[int, Any]:
    async with lrs.get(url, headers=xapi_headers()) as response:
        return response.status, await response.json(content_type=None)


async def stored_ids(lrs: TestClient) -> list[str]:
    status, body = await get(lrs, f"{STATEMENTS}?ascending=true&limit=100")
    assert status == 200
    return [s["id"] for s in body["statements"]]


async def test_a_batch_is_stored_and_answered_with_its_ids(lrs: TestClient) -> None:
    batch = [statement(), statement()]
    status, body = await post(lrs, batch)
    assert status == 200 and body == [s["id"] for s in batch]
    assert await stored_ids(lrs) == body


async def test_the_same_statements_posted_again_are_accepted_once(lrs: TestClient) -> None:
    batch = [statement(), statement()]
    assert (await post(lrs, batch))[0] == 200
    status, body = await post(lrs, batch)
    assert status == 200 and body == [s["id"] for s in batch]
    assert await stored_ids(lrs) == body


async def test_another_statement_under_a_stored_id_is_a_conflict(lrs: TestClient) -> None:
    first = statement()
    assert (await post(lrs, [first]))[0] == 200
    other = {**first, "verb": {"id": "http://adlnet.gov/expapi/verbs/passed"}}
    status, _ = await post(lrs, [statement(), other])
    assert status == 409
    assert await stored_ids(lrs) == [first["id"]]


async def test_a_batch_with_a_repeated_id_is_refused_whole(lrs: TestClient) -> None:
    repeated = statement()
    async with lrs.post(STATEMENTS, json=[statement(), repeated, repeated], headers=xapi_headers()) as response:
        status, body = response.status, await response.read()
    assert status == 400
    # The error names the statement where the sink looks for it (the fake
    # says "message", the service "error"; error_message reads either).
    assert repeated["id"] in error_message(status, body)
    assert await stored_ids(lrs) == []


async def test_wrong_credentials_are_401(lrs: TestClient) -> None:
    status, _ = await post(lrs, [statement()], xapi_headers(secret="wrong"))
    assert status == 401
    async with lrs.get(STATEMENTS, headers=xapi_headers(secret="wrong")) as response:
        assert response.status == 401


async def test_a_request_without_the_version_header_is_400(lrs: TestClient) -> None:
    headers = {k: v for k, v in xapi_headers().items() if k != "X-Experience-API-Version"}
    status, _ = await post(lrs, [statement()], headers)
    assert status == 400
    assert await stored_ids(lrs) == []


async def test_statements_are_read_oldest_first_in_pages_linked_by_more(lrs: TestClient) -> None:
    posted = [statement() for _ in range(3)]
    for s in posted:  # one POST each: three stored times
        assert (await post(lrs, [s]))[0] == 200
    status, page = await get(lrs, f"{STATEMENTS}?ascending=true&limit=2")
    assert status == 200
    assert [s["id"] for s in page["statements"]] == [s["id"] for s in posted[:2]]
    assert all(isinstance(s["stored"], str) for s in page["statements"])
    assert page["more"]
    status, rest = await get(lrs, page["more"])
    assert status == 200
    assert [s["id"] for s in rest["statements"]] == [posted[2]["id"]]
    assert rest["more"] == ""


async def test_since_is_exclusive_of_the_stored_time_it_names(lrs: TestClient) -> None:
    posted = [statement() for _ in range(3)]
    for s in posted:
        assert (await post(lrs, [s]))[0] == 200
    _, page = await get(lrs, f"{STATEMENTS}?ascending=true&limit=100")
    first_stored = page["statements"][0]["stored"]
    async with lrs.get(STATEMENTS, params={"ascending": "true", "since": first_stored},
                       headers=xapi_headers()) as response:
        assert response.status == 200
        later = await response.json()
    assert [s["id"] for s in later["statements"]] == [s["id"] for s in posted[1:]]


async def test_about_lists_a_1_0_version(lrs: TestClient) -> None:
    async with lrs.get("/xapi/about") as response:
        assert response.status == 200
        body = await response.json()
    assert any(v.startswith("1.0.") for v in body["version"])
