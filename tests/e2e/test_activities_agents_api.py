"""/xapi/activities (canonical definitions from senders with the define scope)
and /xapi/agents (the Person object) through HTTP against a real PostgreSQL."""

from __future__ import annotations

import json
import urllib.parse
import uuid

import asyncpg
from aiohttp.test_utils import TestClient, TestServer

from lrs.config import Settings
from lrs.http import keys
from lrs.service import create_app
from tests.e2e.conftest import KEY, SECRET, xapi_headers
from tests.e2e.statements import statement
from tests.e2e.test_documents_api import add_credential

ACTIVITY = "http://example.org/courses/digital-literacy/unit-1"
URL = "/xapi/statements"


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


async def canonical_rows(database_url: str) -> dict[str, dict]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT activity_id, definition FROM activity_definitions")
        return {r["activity_id"]: json.loads(r["definition"]) for r in rows}
    finally:
        await conn.close()


async def test_definitions_are_canonical_when_their_statement_commits(client, database_url):
    """The writer merges definitions in the statement's own transaction: the row is there before
    any GET of the Activities resource, and the checkpoint has moved with it."""
    definer = await add_credential(database_url, "definer", "default", ["statements/write", "define"])
    await post(client, with_definition(ACTIVITY, {"name": {"en-US": "Unit 1"}}), **definer)
    assert await canonical_rows(database_url) == {ACTIVITY: {"name": {"en-US": "Unit 1"}}}
    conn = await asyncpg.connect(database_url)
    try:
        head = await conn.fetchval("SELECT position FROM log_head WHERE singleton")
        assert await conn.fetchval("SELECT position FROM activity_definitions_checkpoint") == head
    finally:
        await conn.close()


async def test_define_scope_is_decided_when_the_statement_is_written(client, database_url):
    """A sender without define at write time never changes the canonical definition, even if the
    same key is later given define; one with define keeps its effect after losing it."""
    later = await add_credential(database_url, "later-definer", "default", ["statements/write"])
    await post(client, with_definition(ACTIVITY, {"name": {"en-US": "Before define"}}), **later)
    assert await canonical_rows(database_url) == {}
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("UPDATE credentials SET scopes = ARRAY['statements/write', 'define'] WHERE key = $1",
                           "later-definer")
    finally:
        await conn.close()
    client.app[keys.AUTHENTICATOR].forget("later-definer")
    _, body = await get_activity(client, ACTIVITY)
    assert body == {"objectType": "Activity", "id": ACTIVITY}
    await post(client, with_definition(ACTIVITY, {"name": {"vi-VN": "Sau"}}), **later)
    _, body = await get_activity(client, ACTIVITY)
    assert body["definition"] == {"name": {"vi-VN": "Sau"}}


async def test_duplicate_and_refused_statements_define_nothing(client, database_url):
    statement_id = str(uuid.uuid4())
    first = {**with_definition(ACTIVITY, {"name": {"en-US": "First"}}), "id": statement_id}
    assert (await client.post(URL, json=first, headers=xapi_headers())).status == 200
    same_again = {**with_definition(ACTIVITY, {"name": {"en-US": "Same statement, other name"}}), "id": statement_id}
    assert (await client.post(URL, json=same_again, headers=xapi_headers())).status == 200  # a duplicate
    conflicting = {**with_definition(ACTIVITY, {"name": {"en-US": "Other"}}), "id": statement_id,
                   "result": {"completion": True}}
    assert (await client.post(URL, json=conflicting, headers=xapi_headers())).status == 409
    assert await canonical_rows(database_url) == {ACTIVITY: {"name": {"en-US": "First"}}}


async def test_start_up_folds_definitions_an_older_version_left_unfolded(clear_client, database_url, tmp_path):
    # An older version stored its statements in clear (sealing came later, off by default then).
    await post(clear_client, with_definition(ACTIVITY, {"name": {"en-US": "Unit 1"}}))
    conn = await asyncpg.connect(database_url)
    try:  # as an older LRS left it: the event in the log, nothing folded
        await conn.execute("DELETE FROM activity_definitions")
        await conn.execute("UPDATE activity_definitions_checkpoint SET position = 0")
    finally:
        await conn.close()
    settings = Settings(database_url=database_url, nats_url=None, relay_enabled=False,
                        frameworks_dir=tmp_path / "fw", bootstrap_credential=f"{KEY}:{SECRET}",
                        privacy_key_file=tmp_path / "privacy-key")
    app = create_app(settings, database_url=database_url, nats_url=None)
    async with TestClient(TestServer(app)) as restarted:
        assert await canonical_rows(database_url) == {ACTIVITY: {"name": {"en-US": "Unit 1"}}}
        _, body = await get_activity(restarted, ACTIVITY)
        assert body["definition"] == {"name": {"en-US": "Unit 1"}}
