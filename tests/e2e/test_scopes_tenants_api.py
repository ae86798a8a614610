"""Scopes on every resource and tenant isolation, through HTTP."""

from __future__ import annotations

import urllib.parse

import msgspec

from lrs.auth import hash_secret
from lrs.http import keys
from lrs.store.credentials import insert_credential
from tests.e2e.conftest import xapi_headers
from tests.e2e.statements import new_id, statement, voiding

URL = "/xapi/statements"
SECRET = "scoped-secret-value"
ACTIVITY = "http://example.org/courses/digital-literacy/unit-1"
AGENT = msgspec.json.encode({"objectType": "Agent", "mbox": "mailto:learner@example.org"}).decode()
STATE_QUERY = urllib.parse.urlencode({"activityId": ACTIVITY, "agent": AGENT, "stateId": "bookmark"})
ACTIVITY_PROFILE_QUERY = urllib.parse.urlencode({"activityId": ACTIVITY, "profileId": "p"})
AGENT_PROFILE_QUERY = urllib.parse.urlencode({"agent": AGENT, "profileId": "p"})


async def credential(client, key: str, *scopes: str, tenant: str = "default", version: str = "1.0.3") -> dict:
    await insert_credential(client.app[keys.POOL], key=key, secret_hash=hash_secret(SECRET), tenant=tenant,
                            scopes=list(scopes), name=key)
    return xapi_headers(version, key=key, secret=SECRET)


async def ids_of(response) -> list[str]:
    assert response.status == 200, await response.text()
    return [s["id"] for s in (await response.json())["statements"]]


async def all_ids(client, headers=None) -> list[str]:
    return await ids_of(await client.get(f"{URL}?limit=0", headers=headers or xapi_headers()))


async def test_statement_scopes(client):
    writer = await credential(client, "writer", "statements/write")
    reader = await credential(client, "reader", "statements/read")
    sid = new_id()
    response = await client.post(URL, json=statement(statement_id=sid), headers=writer)
    assert response.status == 200
    response = await client.get(URL, headers=writer)
    assert response.status == 403
    problem = await response.json()
    assert problem["status"] == 403 and "writer" in problem["error"]
    assert (await client.get(f"{URL}?statementId={sid}", headers=writer)).status == 403

    assert await ids_of(await client.get(URL, headers=reader)) == [sid]
    assert (await client.post(URL, json=statement(), headers=reader)).status == 403
    assert (await client.put(f"{URL}?statementId={new_id()}", json=statement(), headers=reader)).status == 403
    assert await all_ids(client) == [sid]  # the refused writes stored nothing


async def test_read_mine_sees_only_statements_with_its_own_authority(client):
    mine = await credential(client, "own-app", "statements/write", "statements/read/mine")
    other = await credential(client, "other-app", "statements/write")
    own_ids = [new_id() for _ in range(3)]
    other_ids = [new_id() for _ in range(2)]
    for sid in own_ids[:2]:
        assert (await client.post(URL, json=statement(statement_id=sid), headers=mine)).status == 200
    for sid in other_ids:
        assert (await client.post(URL, json=statement(statement_id=sid), headers=other)).status == 200
    assert (await client.post(URL, json=statement(statement_id=own_ids[2]), headers=mine)).status == 200

    assert await ids_of(await client.get(URL, headers=mine)) == own_ids[::-1]
    # Filters still apply on top, and the owner restriction survives paging.
    seen: list[str] = []
    url = f"{URL}?limit=1&ascending=true"
    while url:
        response = await client.get(url, headers=mine)
        assert response.status == 200, await response.text()
        page = await response.json()
        seen += [s["id"] for s in page["statements"]]
        url = page["more"]
    assert seen == own_ids

    # One by id: another credential's statement is not found.
    response = await client.get(f"{URL}?statementId={own_ids[0]}", headers=mine)
    assert response.status == 200 and (await response.json())["id"] == own_ids[0]
    response = await client.get(f"{URL}?statementId={other_ids[0]}", headers=mine)
    assert response.status == 404
    # Voided ones too.
    assert (await client.post(URL, json=voiding(other_ids[1]), headers=other)).status == 200
    assert (await client.get(f"{URL}?voidedStatementId={other_ids[1]}", headers=mine)).status == 404
    assert (await client.get(f"{URL}?voidedStatementId={other_ids[1]}", headers=xapi_headers())).status == 200

    # statements/read sees everyone's.
    everything = await all_ids(client)
    assert set(own_ids + other_ids[:1]) <= set(everything)


async def test_document_scopes(client):
    state = await credential(client, "state-app", "state")
    profile = await credential(client, "profile-app", "profile")
    all_read = await credential(client, "auditor", "all/read")
    writer = await credential(client, "writer-only", "statements/write")
    document = {"page": 3}

    # state: the State resource, read and write; nothing else.
    response = await client.put(f"/xapi/activities/state?{STATE_QUERY}", json=document, headers=state)
    assert response.status == 204, await response.text()
    response = await client.get(f"/xapi/activities/state?{STATE_QUERY}", headers=state)
    assert response.status == 200 and await response.json() == document
    for url in (f"/xapi/activities/profile?{ACTIVITY_PROFILE_QUERY}", f"/xapi/agents/profile?{AGENT_PROFILE_QUERY}"):
        assert (await client.get(url, headers=state)).status == 403
        assert (await client.put(url, json=document, headers=state)).status == 403
    assert (await client.get(URL, headers=state)).status == 403
    assert (await client.post(URL, json=statement(), headers=state)).status == 403

    # profile: both profile resources; not State.
    for url in (f"/xapi/activities/profile?{ACTIVITY_PROFILE_QUERY}", f"/xapi/agents/profile?{AGENT_PROFILE_QUERY}"):
        response = await client.put(url, json=document, headers={**profile, "If-None-Match": "*"})
        assert response.status == 204, await response.text()
        assert (await client.get(url, headers=profile)).status == 200
    assert (await client.get(f"/xapi/activities/state?{STATE_QUERY}", headers=profile)).status == 403
    assert (await client.delete(f"/xapi/activities/state?{STATE_QUERY}", headers=profile)).status == 403

    # all/read: every read, no write.
    response = await client.get(f"/xapi/activities/state?{STATE_QUERY}", headers=all_read)
    assert response.status == 200 and await response.json() == document
    assert (await client.get(f"/xapi/agents/profile?{AGENT_PROFILE_QUERY}", headers=all_read)).status == 200
    assert (await client.get(URL, headers=all_read)).status == 200
    assert (await client.put(f"/xapi/activities/state?{STATE_QUERY}", json={"x": 1}, headers=all_read)).status == 403
    assert (await client.delete(f"/xapi/activities/state?{STATE_QUERY}", headers=all_read)).status == 403
    assert (await client.post(URL, json=statement(), headers=all_read)).status == 403

    # Lookups: any reading scope, not a write-only credential.
    activity_url = "/xapi/activities?" + urllib.parse.urlencode({"activityId": ACTIVITY})
    agents_url = "/xapi/agents?" + urllib.parse.urlencode({"agent": AGENT})
    for headers in (state, profile, all_read):
        assert (await client.get(agents_url, headers=headers)).status == 200
    assert (await client.get(activity_url, headers=writer)).status == 403
    assert (await client.get(agents_url, headers=writer)).status == 403

    # The refused writes changed nothing.
    response = await client.get(f"/xapi/activities/state?{STATE_QUERY}", headers=state)
    assert await response.json() == document


async def test_define_alone_cannot_touch_statements_or_documents(client):
    define = await credential(client, "definer", "define")
    assert (await client.post(URL, json=statement(), headers=define)).status == 403
    assert (await client.get(URL, headers=define)).status == 403
    assert (await client.get(f"/xapi/activities/state?{STATE_QUERY}", headers=define)).status == 403
    response = await client.get("/xapi/activities?" + urllib.parse.urlencode({"activityId": ACTIVITY}), headers=define)
    assert response.status != 403


async def test_metrics_need_all(client):
    reader = await credential(client, "reader-m", "statements/read")
    assert (await client.get("/metrics", headers=reader)).status == 403
    response = await client.get("/metrics", headers=xapi_headers())
    assert response.status == 200


async def test_unauthenticated_requests_are_401_and_public_paths_need_nothing(client):
    response = await client.get(URL, headers={"X-Experience-API-Version": "1.0.3"})
    assert response.status == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic")
    assert (await response.json())["status"] == 401
    for path in ("/xapi/about", "/xapi/openapi.json", "/health"):
        assert (await client.get(path)).status == 200, path


async def test_nothing_crosses_tenants(client):
    home = xapi_headers()  # tenant "default"
    away = await credential(client, "away-all", "all", tenant="away")
    shared_id = new_id()
    home_only = new_id()
    # The same id in two tenants is two statements, each with its own content: no 409.
    response = await client.post(URL, json=[statement(statement_id=shared_id, learner="home@example.org"),
                                            statement(statement_id=home_only)], headers=home)
    assert response.status == 200
    response = await client.post(URL, json=statement(statement_id=shared_id, learner="away@example.org"), headers=away)
    assert response.status == 200, await response.text()

    response = await client.get(f"{URL}?statementId={shared_id}", headers=away)
    assert (await response.json())["actor"]["mbox"] == "mailto:away@example.org"
    response = await client.get(f"{URL}?statementId={shared_id}", headers=home)
    assert (await response.json())["actor"]["mbox"] == "mailto:home@example.org"
    assert (await client.get(f"{URL}?statementId={home_only}", headers=away)).status == 404
    assert await all_ids(client, away) == [shared_id]

    # Voiding in one tenant cannot reach another tenant's statement.
    response = await client.post(URL, json=voiding(home_only), headers=away)
    assert response.status == 200
    assert (await client.get(f"{URL}?statementId={home_only}", headers=home)).status == 200
    assert (await client.get(f"{URL}?voidedStatementId={home_only}", headers=home)).status == 404

    # A more cursor from one tenant is not found in another, even for a credential of the same name.
    response = await client.get(f"{URL}?limit=1", headers=home)
    more = (await response.json())["more"]
    assert more
    response = await client.get(more, headers=away)
    assert response.status == 404
    assert (await client.get(more, headers=home)).status == 200

    # Documents: a state written in one tenant is not there in the other.
    response = await client.put(f"/xapi/activities/state?{STATE_QUERY}", json={"tenant": "home"}, headers=home)
    assert response.status == 204
    assert (await client.get(f"/xapi/activities/state?{STATE_QUERY}", headers=away)).status == 404
