"""Per-request version handling through HTTP."""

from __future__ import annotations

from tests.e2e.conftest import xapi_headers
from tests.e2e.statements import new_id, statement

URL = "/xapi/statements"


async def test_timestamps_by_request_version(client):
    sent = "2024-03-10T08:15:30.125+07:00"
    by_version = {}
    for version in ("1.0.3", "2.0.0"):
        sid = new_id()
        body = {**statement(statement_id=sid), "timestamp": sent}
        response = await client.post(URL, json=body, headers=xapi_headers(version))
        assert response.status == 200, await response.text()
        assert response.headers["X-Experience-API-Version"] == version
        response = await client.get(f"{URL}?statementId={sid}", headers=xapi_headers(version))
        by_version[version] = (await response.json())["timestamp"]
    assert by_version == {"1.0.3": "2024-03-10T01:15:30.125Z", "2.0.0": "2024-03-10T01:15:30.125Z"}


async def test_same_statement_resent_with_utc_timestamp_is_not_a_conflict(client):
    sid = new_id()
    body = {**statement(statement_id=sid), "timestamp": "2024-03-10T08:15:30+07:00"}
    assert (await client.put(f"{URL}?statementId={sid}", json=body, headers=xapi_headers("2.0.0"))).status == 204
    again = {**body, "timestamp": "2024-03-10T01:15:30Z"}
    assert (await client.put(f"{URL}?statementId={sid}", json=again, headers=xapi_headers("2.0.0"))).status == 204


async def test_about_lists_both_versions(client):
    response = await client.get("/xapi/about")
    assert response.status == 200
    assert set((await response.json())["version"]) >= {"1.0.3", "2.0.0"}
