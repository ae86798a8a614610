"""Edge values a URL or a body can carry are a 400 naming where they are,
never a 500, and nothing is stored: a NUL character (PostgreSQL text cannot
hold one), moments and periods at the ends of the calendar, positions past
PostgreSQL's bigint."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import pytest

from tests.e2e.conftest import xapi_headers

AGENT = quote(json.dumps({"mbox": "mailto:x@example.org"}))


NUL_IN_URL = [
    (f"/xapi/activities/state?activityId=http://a.example/b&agent={AGENT}&stateId=%00", "stateId"),
    ("/xapi/activities/profile?activityId=http://a.example/b&profileId=a%00", "profileId"),
    (f"/xapi/agents/profile?agent={AGENT}&profileId=%00", "profileId"),
    ("/competency/learners/%00", "learner"),
    ("/competency/units/%00/summary", "unit"),
    ("/competency/units/mic/learners?after=%00", "after"),
    ("/competency/admin/memberships?unit=%00", "unit"),
]
PAST_THE_ENDS = [
    ("/competency/units/mic/summary?as_of=0001-01-01T00:00:00%2B14:00", "as_of"),
    ("/competency/units/mic/summary?as_of=9999-12-31T23:59:59-14:00", "as_of"),
    ("/competency/admin/memberships?after_learner=x&after_from=0001-01-01T00:00:00%2B14:00", "after_from"),
    ("/competency/admin/memberships?after_learner=x&after_recorded=99999999999999999999", "after_recorded"),
    ("/competency/units/mic/series?from=9999-12-01&to=9999-12-31&interval=month", "to"),
    ("/competency/units/mic/series?from=9999-12-25&to=9999-12-31&interval=week", "to"),
    ("/competency/units/mic/series?from=2026-01-01&to=2026-02-01&interval=year", "interval"),
]


@pytest.mark.parametrize(
    "url, parameter, says",
    [(url, parameter, "NUL") for url, parameter in NUL_IN_URL] + [(url, parameter, "") for url, parameter in PAST_THE_ENDS],
)
async def test_edge_values_in_a_url_are_400_naming_the_parameter(client: Any, url: str, parameter: str, says: str) -> None:
    response = await client.get(url, headers=xapi_headers())
    body = await response.json()
    assert response.status == 400, body
    assert body["path"] == parameter and says in body["error"]


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
