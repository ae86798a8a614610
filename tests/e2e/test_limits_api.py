"""Configured limits through HTTP: body size, statements per batch, page size, request rate."""

from __future__ import annotations

import contextlib
import json
import urllib.parse
from typing import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from lrs.auth import hash_secret
from lrs.config import Settings
from lrs.http import keys
from lrs.service import create_app
from lrs.store.credentials import insert_credential
from tests.e2e.conftest import KEY, SECRET, xapi_headers
from tests.e2e.statements import new_id, statement

URL = "/xapi/statements"


@pytest.fixture
def limited(database_url: str):
    @contextlib.asynccontextmanager
    async def make(**limits) -> AsyncIterator[TestClient]:
        settings = Settings(database_url=database_url, nats_url=None, relay_enabled=False,
                            bootstrap_credential=f"{KEY}:{SECRET}", **limits)
        app = create_app(settings, database_url=database_url, nats_url=None)
        async with TestServer(app) as server, TestClient(server) as client:
            yield client

    return make


async def _stored(client) -> int:
    response = await client.get(f"{URL}?limit=0", headers=xapi_headers())
    assert response.status == 200
    return len((await response.json())["statements"])


def _padded(size: int) -> dict:
    body = statement()
    body["result"] = {"response": "x" * size}
    return body


async def test_body_size_limit_is_413_json_and_stores_nothing(limited):
    async with limited(max_body_bytes=4096) as client:
        big = json.dumps(_padded(5000)).encode()
        # Declared length: refused before the body is read.
        response = await client.post(URL, data=big, headers={**xapi_headers(), "Content-Type": "application/json"})
        assert response.status == 413
        problem = await response.json()
        assert problem["status"] == 413 and "4096" in problem["error"]
        assert problem["path"] == "Content-Length"  # as a 400 names the header or parameter at fault

        # No declared length (chunked): refused while reading.
        async def chunks():
            for start in range(0, len(big), 1000):
                yield big[start:start + 1000]

        response = await client.post(URL, data=chunks(), headers={**xapi_headers(), "Content-Type": "application/json"})
        assert response.status == 413
        problem = await response.json()
        assert problem["status"] == 413 and problem["path"] == "$"  # the body as read

        # Through the alternate syntax.
        form = urllib.parse.urlencode({"content": json.dumps(_padded(5000))})
        response = await client.post(f"{URL}?method=POST", data=form,
                                     headers={**xapi_headers(), "Content-Type": "application/x-www-form-urlencoded"})
        assert response.status == 413 and (await response.json())["path"] == "Content-Length"

        small = json.dumps(_padded(100)).encode()
        response = await client.post(URL, data=small, headers={**xapi_headers(), "Content-Type": "application/json"})
        assert response.status == 200
        assert await _stored(client) == 1


async def test_statements_per_batch_limit_is_413_and_stores_nothing(limited):
    async with limited(max_batch_statements=3) as client:
        response = await client.post(URL, json=[statement() for _ in range(4)], headers=xapi_headers())
        assert response.status == 413
        problem = await response.json()
        assert problem["status"] == 413 and "at most 3" in problem["error"] and problem["path"] == "$"
        assert await _stored(client) == 0
        response = await client.post(URL, json=[statement() for _ in range(3)], headers=xapi_headers())
        assert response.status == 200
        assert await _stored(client) == 3


async def test_page_size_is_clamped(limited):
    async with limited(page_size_default=2, page_size_max=3) as client:
        ids = [new_id() for _ in range(5)]
        assert (await client.post(URL, json=[statement(statement_id=i) for i in ids], headers=xapi_headers())).status == 200
        for query, expected in (("", 2), ("?limit=100", 3), ("?limit=0", 3), ("?limit=1", 1)):
            response = await client.get(URL + query, headers=xapi_headers())
            page = await response.json()
            assert len(page["statements"]) == expected, query
            assert page["more"]


async def test_request_rate_per_credential_is_429_with_retry_after(limited):
    async with limited(rate_limit_per_s=0.01, rate_limit_burst=3) as client:
        await insert_credential(client.app[keys.POOL], key="second", secret_hash=hash_secret("second-secret"),
                                tenant="default", scopes=["all"], name="second")
        statuses = [(await client.get(URL, headers=xapi_headers())).status for _ in range(3)]
        assert statuses == [200, 200, 200]
        response = await client.post(URL, json=statement(), headers=xapi_headers())
        assert response.status == 429
        assert int(response.headers["Retry-After"]) >= 1
        problem = await response.json()
        assert problem["status"] == 429 and KEY in problem["error"]
        # Nothing was stored, and another credential has its own allowance.
        other = xapi_headers(key="second", secret="second-secret")
        response = await client.get(f"{URL}?limit=0", headers=other)
        assert response.status == 200 and (await response.json())["statements"] == []
        # Public probes are not counted against anyone.
        assert (await client.get("/health")).status == 200


async def test_default_limits_are_generous(limited):
    defaults = Settings()
    assert defaults.rate_limit_per_s >= 100 and defaults.rate_limit_burst >= 100
    assert defaults.max_batch_statements >= 1000
    assert defaults.max_body_bytes >= 10 * 1024 * 1024
    async with limited() as client:
        for _ in range(150):
            response = await client.get(f"{URL}?limit=1", headers=xapi_headers())
            assert response.status == 200
