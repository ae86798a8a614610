"""IRIs per RFC 3987 through HTTP: a malformed IRI anywhere is a 400 naming it, nothing stored."""

from __future__ import annotations

import functools

import pytest

from tests.e2e.conftest import xapi_headers
from tests.statements import ATTEMPTED, statement

BAD = ["http://[::1", "http://example.com:80a/x", "http://example.com/%zz"]


_statement = functools.partial(statement, mbox="mailto:a@example.org", verb=ATTEMPTED, activity="http://example.org/a")


@pytest.mark.parametrize("iri", BAD)
async def test_a_bad_iri_in_a_statement_is_400_naming_the_field(client, iri):
    cases = [
        (_statement(verb=iri), "verb.id"),
        (_statement(activity=iri), "object.id"),
        (_statement(context={"extensions": {iri: 1}}), "context.extensions"),
    ]
    for body, where in cases:
        response = await client.post("/xapi/statements", json=body, headers=xapi_headers())
        problem = await response.json()
        assert response.status == 400, problem
        assert where in (problem.get("path") or "") and "RFC 3987" in problem["error"], problem
    response = await client.get("/xapi/statements", headers=xapi_headers())
    assert (await response.json())["statements"] == []


@pytest.mark.parametrize("param", ["verb", "activity"])
async def test_a_bad_iri_in_a_query_is_400(client, param):
    response = await client.get("/xapi/statements", params={param: "http://[::1"}, headers=xapi_headers())
    assert response.status == 400 and param in (await response.json())["error"]


async def test_good_iris_are_stored(client):
    body = _statement(verb="http://[::1]:8080/verbs/đã-học", activity="urn:uuid:6ba7b810-9dad-11d1-80b4-00c04fd430c8")
    response = await client.post("/xapi/statements", json=body, headers=xapi_headers())
    assert response.status == 200, await response.text()
