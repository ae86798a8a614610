"""Timestamps the competency rules cannot read are refused at the door: a
400 naming the JSON path (or the parameter), and nothing of the request is
stored; the forms the LRS accepts come back in UTC (lrs.xapi.timestamps)."""

from __future__ import annotations

import json
import urllib.parse

import pytest

from tests.e2e.conftest import xapi_headers
from tests.e2e.statements import statement

STATEMENTS = "/xapi/statements"
STATE = "/xapi/activities/state"
JSON = {"Content-Type": "application/json"}
AGENT = {"objectType": "Agent", "mbox": "mailto:ann@example.org"}
REFUSED = ["0000-03-01T08:00:00Z", "9999-12-31T23:59:59-01:00", "0001-01-01T00:30:00+01:00",
           "2025-03-01T08:00:00+05:60", "2025-03-01T24:00:00Z", "2025-060T08:00:00Z"]
SUB = {"objectType": "SubStatement", "actor": AGENT, "verb": {"id": "http://adlnet.gov/expapi/verbs/attempted"},
       "object": {"id": "http://example.org/b"}}


async def _stored_ids(client) -> list[str]:
    response = await client.get(STATEMENTS, headers=xapi_headers())
    assert response.status == 200
    return [s["id"] for s in (await response.json())["statements"]]


async def _refused(response, path: str) -> None:
    text = await response.text()
    assert response.status == 400, text
    payload = json.loads(text)
    assert payload.get("path") == path or path in payload["error"], payload


@pytest.mark.parametrize("value", REFUSED)
async def test_a_batch_holding_a_refused_timestamp_stores_nothing(client, value: str) -> None:
    good = [statement(learner="a@example.org"), {**statement(learner="b@example.org"), "timestamp": "2025-03-01T08:00:00Z"}]
    bad = {**statement(learner="c@example.org"), "timestamp": value}
    response = await client.post(STATEMENTS, data=json.dumps([*good, bad]), headers={**xapi_headers(), **JSON})
    await _refused(response, "$[2].timestamp")
    sub = {**statement(learner="d@example.org"), "object": {**SUB, "timestamp": value}}
    response = await client.post(STATEMENTS, data=json.dumps([*good, sub]), headers={**xapi_headers("2.0.0"), **JSON})
    await _refused(response, "$[2].object.timestamp")
    response = await client.put(STATEMENTS, params={"statementId": "6f4a3f39-8e8b-4a9c-8b1e-2b8f3c1d9e77"},
                                data=json.dumps(bad), headers={**xapi_headers(), **JSON})
    await _refused(response, "$.timestamp")
    assert await _stored_ids(client) == []


@pytest.mark.parametrize("value", ["9999-12-31T23:59:59-01:00", "0001-01-01T00:30:00+01:00", "2025-03-01T08:00:00+05:60"])
async def test_a_since_or_until_outside_the_timestamps_is_a_400_naming_it(client, value: str) -> None:
    for name in ("since", "until"):
        response = await client.get(STATEMENTS, params={name: value}, headers=xapi_headers())
        await _refused(response, name)
    ids = STATE + "?" + urllib.parse.urlencode(
        {"activityId": "http://example.org/a", "agent": json.dumps(AGENT), "since": value})
    await _refused(await client.get(ids, headers=xapi_headers()), "since")


async def test_a_leap_second_is_stored_as_the_next_second_in_utc(client) -> None:
    body = {**statement(), "timestamp": "2016-12-31T23:59:60.5+00:00"}
    response = await client.post(STATEMENTS, data=json.dumps(body), headers={**xapi_headers(), **JSON})
    assert response.status == 200, await response.text()
    [statement_id] = await response.json()
    response = await client.get(STATEMENTS, params={"statementId": statement_id}, headers=xapi_headers())
    assert (await response.json())["timestamp"] == "2017-01-01T00:00:00.5Z"
