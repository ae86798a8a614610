"""/xapi/activities (canonical definitions from senders with the define scope)
and /xapi/agents (the Person object) through HTTP against a real PostgreSQL."""

from __future__ import annotations

import json
import urllib.parse

from tests.e2e.conftest import xapi_headers
from tests.e2e.statements import statement
from tests.e2e.test_documents_api import add_credential

ACTIVITY = "http://example.org/courses/digital-literacy/unit-1"


async def get_activity(client, activity_id: str, **auth: str):
    response = await client.get(
        "/xapi/activities?" + urllib.parse.urlencode({"activityId": activity_id}), headers=xapi_headers(**auth)
    )
    return response, await response.json()


async def get_person(client, agent: dict, **auth: str):
    response = await client.get(
        "/xapi/agents?" + urllib.parse.urlencode({"agent": json.dumps(agent)}), headers=xapi_headers(**auth)
    )
    return response, await response.json()


def with_definition(activity: str, definition: dict, **kwargs) -> dict:
    body = statement(activity=activity, **kwargs)
    body["object"]["definition"] = definition
    return body


async def post(client, body, **auth: str) -> None:
    response = await client.post("/xapi/statements", json=body, headers=xapi_headers(**auth))
    assert response.status == 200, await response.text()


async def test_unknown_activity_is_still_an_activity(client):
    response, body = await get_activity(client, "http://example.org/never-seen")
    assert response.status == 200
    assert body == {"objectType": "Activity", "id": "http://example.org/never-seen"}
    assert response.headers["ETag"].startswith('"')


async def test_canonical_definition_merges_definitions_from_define_scope(client, database_url):
    definer = await add_credential(database_url, "definer", "default", ["statements/write", "define"])
    plain = await add_credential(database_url, "plain-writer", "default", ["statements/write"])
    await post(client, with_definition(ACTIVITY, {"name": {"en-US": "Unit 1"}, "type": "http://example.org/t/unit"}))
    response, body = await get_activity(client, ACTIVITY)
    assert body["definition"] == {"name": {"en-US": "Unit 1"}, "type": "http://example.org/t/unit"}

    # A sender without define changes nothing, before or after a definer.
    await post(client, with_definition(ACTIVITY, {"name": {"en-US": "Hijacked"}}), **plain)
    await post(client, with_definition(ACTIVITY, {"name": {"vi-VN": "Bài 1"}, "moreInfo": "http://example.org/u1"}), **definer)
    # Definitions in context activities count too.
    parent = "http://example.org/courses/digital-literacy"
    child = statement(activity="http://example.org/courses/digital-literacy/unit-2")
    child["context"] = {"contextActivities": {"parent": [{"id": parent, "definition": {"name": {"en-US": "Course"}}}]}}
    await post(client, child, **definer)

    response, body = await get_activity(client, ACTIVITY)
    assert response.status == 200
    assert body == {
        "objectType": "Activity",
        "id": ACTIVITY,
        "definition": {
            "name": {"en-US": "Unit 1", "vi-VN": "Bài 1"},
            "type": "http://example.org/t/unit",
            "moreInfo": "http://example.org/u1",
        },
    }
    _, course = await get_activity(client, parent)
    assert course["definition"] == {"name": {"en-US": "Course"}}
    # Readable with any reading scope; other tenants know nothing of it.
    response, _ = await get_activity(client, ACTIVITY, **plain)
    assert response.status == 403
    other = await add_credential(database_url, "elsewhere", "other", ["all"])
    _, theirs = await get_activity(client, ACTIVITY, **other)
    assert theirs == {"objectType": "Activity", "id": ACTIVITY}


async def test_activities_parameters(client):
    for query in ("", "?activityId=not%20an%20iri", "?activityId=http://x.org/a&extra=1"):
        response = await client.get("/xapi/activities" + query, headers=xapi_headers())
        assert response.status == 400, query


async def test_person_for_unknown_agent_is_the_agent(client):
    agent = {"objectType": "Agent", "name": "Nobody", "mbox": "mailto:nobody@example.org"}
    response, body = await get_person(client, agent)
    assert response.status == 200
    assert body == {"objectType": "Person", "name": ["Nobody"], "mbox": ["mailto:nobody@example.org"]}


async def test_person_collects_names_from_statements(client, database_url):
    await post(client, statement(learner="ann@example.org"))  # actor name "A Learner"
    renamed = statement(learner="ann@example.org")
    renamed["actor"]["name"] = "Ann Nguyen"
    await post(client, renamed)
    response, body = await get_person(client, {"mbox": "mailto:ann@example.org"})
    assert response.status == 200
    assert body == {"objectType": "Person", "name": ["Ann Nguyen", "A Learner"], "mbox": ["mailto:ann@example.org"]}

    other = await add_credential(database_url, "elsewhere", "other", ["all"])
    _, theirs = await get_person(client, {"mbox": "mailto:ann@example.org"}, **other)
    assert theirs == {"objectType": "Person", "mbox": ["mailto:ann@example.org"]}


async def test_agents_parameters(client):
    group = {"objectType": "Group", "mbox": "mailto:team@example.org"}
    response, body = await get_person(client, group)
    assert response.status == 400 and "Group" in body["error"]
    for query in ("", "?agent=%7B", "?agent=" + urllib.parse.quote(json.dumps({"name": "x"}))):
        response = await client.get("/xapi/agents" + query, headers=xapi_headers())
        assert response.status == 400, query
