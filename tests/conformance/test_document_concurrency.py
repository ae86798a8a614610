"""Concurrency of the document resources: 1.0.3 Communication 3.1 "Concurrency" and 2.0 Communication
4.1.4 "Concurrency". The two versions differ on the State resource (only 2.0 lists it) and on a profile
PUT without either header (1.0.3 binds the client to send one)."""

from __future__ import annotations

import json

import pytest

from tests.conformance.support import headers

AGENT = json.dumps({"objectType": "Agent", "mbox": "mailto:learner@example.org"})
ACTIVITY = "http://example.org/activities/concurrency"
STATE = ("/xapi/activities/state", {"activityId": ACTIVITY, "agent": AGENT, "stateId": "bookmark"})
ACTIVITY_PROFILE = ("/xapi/activities/profile", {"activityId": ACTIVITY, "profileId": "settings"})
AGENT_PROFILE = ("/xapi/agents/profile", {"agent": AGENT, "profileId": "settings"})
PROFILES = [ACTIVITY_PROFILE, AGENT_PROFILE]
JSON = {"Content-Type": "application/json"}


async def put(client, target, body: bytes, version: str, **extra: str):
    path, params = target
    return await client.put(path, params=params, data=body, headers={**headers(version), **JSON, **extra})


async def current(client, target, version: str):
    path, params = target
    return await client.get(path, params=params, headers=headers(version))


async def test_2_0_4_1_4_state_put_without_headers_to_an_existing_document_is_409(client):
    """2.0 Communication 4.1.4: "xAPI uses HTTP 1.1 entity tags (ETags) to implement optimistic
    concurrency control in the following resources, where PUT, POST or DELETE are allowed to overwrite or
    remove existing data: State Resource, Agent Profile Resource, Activity Profile Resource" and "If a PUT
    request is received without either header for a resource that already exists, the LRS: _shall_
    return HTTP status 409 Conflict. _shall_ return a response explaining that the Learning Record
    Provider _should_ check the current state of the resource. set the "If-Match" header with the current
    ETag to resolve the conflict. _shall not_ make a modification to the resource."."""
    assert (await put(client, STATE, b'{"page": 1}', "2.0.0")).status == 204  # creating needs no header
    conflict = await put(client, STATE, b'{"page": 2}', "2.0.0")
    assert conflict.status == 409
    message = (await conflict.json())["error"]
    assert "If-Match" in message and "current state" in message
    got = await current(client, STATE, "2.0.0")
    assert await got.read() == b'{"page": 1}'
    etag = got.headers["ETag"]
    assert (await put(client, STATE, b'{"page": 2}', "2.0.0", **{"If-Match": etag})).status == 204
    assert await (await current(client, STATE, "2.0.0")).read() == b'{"page": 2}'


async def test_3_1_s3_state_stays_permissive_in_1_0_3(client):
    """1.0.3 Communication 3.1.s3 lists the client's header duties for "the Agent Profile Resource or
    Activity Profile Resource" only, and 3.1.s4.b13 ("If a PUT request is received without either header
    for a resource that already exists, the LRS: MUST return HTTP status 409 Conflict.") follows from
    them; the State resource accepts a PUT without either header and replaces the document."""
    assert (await put(client, STATE, b'{"page": 1}', "1.0.3")).status == 204
    assert (await put(client, STATE, b'{"page": 2}', "1.0.3")).status == 204
    assert await (await current(client, STATE, "1.0.3")).read() == b'{"page": 2}'


@pytest.mark.parametrize("target", PROFILES, ids=["activity-profile", "agent-profile"])
async def test_3_1_s3_b1_1_0_3_profile_put_without_either_header_to_a_new_document_is_400(client, target):
    """1.0.3 Communication 3.1.s3.b1: "A Client making a PUT request to either the Agent Profile Resource
    or Activity Profile Resource MUST include the "If-Match" header or the If-None-Match header." A PUT
    that sends neither is malformed (3.2.s2.b1: "400 Bad Request - Indicates an error condition caused by
    an invalid or missing argument."): 400 naming the header, and no document is created."""
    response = await put(client, target, b'{"v": 1}', "1.0.3")
    assert response.status == 400
    assert "If-None-Match" in (await response.json())["error"]
    assert (await current(client, target, "1.0.3")).status == 404
    assert (await put(client, target, b'{"v": 1}', "1.0.3", **{"If-None-Match": "*"})).status == 204


@pytest.mark.parametrize("target", PROFILES, ids=["activity-profile", "agent-profile"])
async def test_3_1_s4_b13_1_0_3_profile_put_without_either_header_to_an_existing_document_is_409(client, target):
    """1.0.3 Communication 3.1.s4.b13-b15: "If a PUT request is received without either header for a
    resource that already exists, the LRS: MUST return HTTP status 409 Conflict. MUST return a response
    explaining that the Learning Record Provider SHOULD check the current state of the resource. set the
    "If-Match" header with the current ETag to resolve the conflict. MUST NOT make a modification to the
    resource."."""
    assert (await put(client, target, b'{"v": 1}', "1.0.3", **{"If-None-Match": "*"})).status == 204
    conflict = await put(client, target, b'{"v": 2}', "1.0.3")
    assert conflict.status == 409
    assert "If-Match" in (await conflict.json())["error"]
    assert await (await current(client, target, "1.0.3")).read() == b'{"v": 1}'


@pytest.mark.parametrize("target", PROFILES, ids=["activity-profile", "agent-profile"])
async def test_2_0_4_1_4_profile_put_without_headers_creates_and_then_conflicts(client, target):
    """2.0 Communication 4.1.4 (quoted above) makes the 409 rule the LRS's only duty for a PUT without
    either header: a new document is created, an existing one is 409 and unchanged."""
    assert (await put(client, target, b'{"v": 1}', "2.0.0")).status == 204
    assert (await put(client, target, b'{"v": 2}', "2.0.0")).status == 409
    assert await (await current(client, target, "2.0.0")).read() == b'{"v": 1}'
