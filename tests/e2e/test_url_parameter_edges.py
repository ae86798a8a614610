"""Edge values a URL, a form or a body can carry are a 400 naming where they
are, never a 500, and nothing is stored: moments and periods at the ends of
the calendar, positions past PostgreSQL's bigint, a NUL character
(PostgreSQL text cannot hold one) in a body or the alternate syntax's form."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote, urlencode

import pytest

from tests.e2e.conftest import xapi_headers

AGENT = quote(json.dumps({"mbox": "mailto:x@example.org"}))


PAST_THE_ENDS = [
    ("/competency/units/mic/summary?as_of=0001-01-01T00:00:00%2B14:00", "as_of"),
    ("/competency/units/mic/summary?as_of=9999-12-31T23:59:59-14:00", "as_of"),
    ("/competency/admin/memberships?after_learner=x&after_from=0001-01-01T00:00:00%2B14:00", "after_from"),
    ("/competency/admin/memberships?after_learner=x&after_recorded=99999999999999999999", "after_recorded"),
    ("/competency/units/mic/series?from=9999-12-01&to=9999-12-31&interval=month", "to"),
    ("/competency/units/mic/series?from=9999-12-25&to=9999-12-31&interval=week", "to"),
    ("/competency/units/mic/series?from=2026-01-01&to=2026-02-01&interval=year", "interval"),
]


@pytest.mark.parametrize("url, parameter", PAST_THE_ENDS)
async def test_edge_values_in_a_url_are_400_naming_the_parameter(client: Any, url: str, parameter: str) -> None:
    """(A NUL in a URL: tests/e2e/test_unstorable_text.py.)"""
    response = await client.get(url, headers=xapi_headers())
    body = await response.json()
    assert response.status == 400, body
    assert body["path"] == parameter


async def test_a_nul_in_a_unit_name_is_400_and_nothing_is_loaded(client: Any) -> None:
    roster = {"units": [{"id": "nul-unit", "kind": "ministry", "name": "M\u0000"}]}
    response = await client.post("/competency/admin/roster", json=roster, headers=xapi_headers())
    body = await response.json()
    assert response.status == 400, body
    assert body["problems"] == ["body $.units[0]: 'M\\x00' contains a NUL character"]
    units = await (await client.get("/competency/admin/units", headers=xapi_headers())).json()
    assert "nul-unit" not in [u["id"] for u in units["units"]]


async def test_a_nul_in_a_linked_identifier_is_400_and_nothing_is_linked(client: Any) -> None:
    link = {"op": "link", "person": "mbox:mailto:x@example.org", "identifiers": ["account:http://sso.example|a\u0000b"]}
    response = await client.post("/competency/admin/identities", json=link, headers=xapi_headers())
    body = await response.json()
    assert response.status == 400, body
    assert body["path"] == "$.identifiers[0]" and "not an actor IFI key" in body["error"]
    again = {"op": "unlink", "person": "mbox:mailto:x@example.org", "identifiers": ["account:http://sso.example|ab"]}
    refused = await client.post("/competency/admin/identities", json=again, headers=xapi_headers())
    assert refused.status == 409 and "linked to no person" in (await refused.json())["error"]


async def test_a_nul_in_a_form_field_of_the_alternate_syntax_is_400_naming_it(client: Any) -> None:
    """The alternate request syntax carries the query parameters and headers
    in its form body, which the guard on the URL never saw."""
    fields = {"activityId": "http://a.example/b", "agent": json.dumps({"mbox": "mailto:x@example.org"}),
              "stateId": "s\x00", "X-Experience-API-Version": "1.0.3"}
    response = await client.post("/xapi/activities/state?method=GET", data=urlencode(fields),
                                 headers={**xapi_headers(), "Content-Type": "application/x-www-form-urlencoded"})
    body = await response.json()
    assert response.status == 400, body
    assert "stateId" in body["error"] and "NUL" in body["error"]
