"""The document resources through HTTP against a real PostgreSQL: State,
Activity Profile and Agent Profile, ETags, merge, byte-exact content,
tenants and scopes, and every write as an event in the hash-chained log."""

from __future__ import annotations

import hashlib
import json
import urllib.parse
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

import asyncio

import asyncpg
import nats
import pytest
from aiohttp.test_utils import TestClient, TestServer
from nats.js import api

from lrs.auth import hash_secret
from lrs.config import Settings
from lrs.documents.events import DOCUMENT_EVENT, replay_documents
from lrs.eventlog import verify_chain
from lrs.store.credentials import insert_credential
from lrs.store.log_reader import read_events_after
from lrs.service import create_app
from tests.e2e.conftest import KEY, SECRET, xapi_headers
from tests.e2e.statements import statement

STATE = "/xapi/activities/state"
ACTIVITY_PROFILE = "/xapi/activities/profile"
AGENT_PROFILE = "/xapi/agents/profile"
ACTIVITY = "http://example.org/courses/digital-literacy/unit-1"
AGENT = {"objectType": "Agent", "name": "Ann", "mbox": "mailto:ann@example.org"}
REGISTRATION = "6f4a3f39-8e8b-4a9c-8b1e-2b8f3c1d9e77"


def url(path: str, **params: str) -> str:
    return path + "?" + urllib.parse.urlencode(params)


def state_url(**params: str) -> str:
    return url(STATE, activityId=ACTIVITY, agent=json.dumps(AGENT), **params)


def headers(extra: dict[str, str] | None = None, **auth: str) -> dict[str, str]:
    return {**xapi_headers(**auth), **(extra or {})}


# A 1.0.3 PUT to a profile resource must send If-Match or If-None-Match
# (Communication 3.1.s3.b1); creating a document sends If-None-Match: *.
CREATE = {"If-None-Match": "*"}


def sha1_etag(content: bytes) -> str:
    return '"' + hashlib.sha1(content).hexdigest() + '"'


async def add_credential(database_url: str, key: str, tenant: str, scopes: list[str]) -> dict[str, str]:
    conn = await asyncpg.connect(database_url)
    try:
        await insert_credential(
            conn, key=key, secret_hash=hash_secret(key + "-secret"), tenant=tenant, scopes=scopes, name=key
        )
    finally:
        await conn.close()
    return {"key": key, "secret": key + "-secret"}


async def events_and_documents(database_url: str):
    conn = await asyncpg.connect(database_url)
    try:
        events = await read_events_after(conn, 0, 10_000)
        rows = await conn.fetch(
            "SELECT tenant, resource, activity_id, agent_key, registration, document_id, content, "
            "content_type, etag, updated, position FROM documents"
        )
    finally:
        await conn.close()
    return events, rows


async def test_state_put_get_head_with_etag_and_last_modified(client):
    body = b'{"progress": 0.5, "bookmark": "p3"}'
    before = datetime.now(timezone.utc).replace(microsecond=0)
    put = await client.put(state_url(stateId="s1"), data=body, headers=headers({"Content-Type": "application/json"}))
    assert put.status == 204, await put.text()
    assert put.headers["ETag"] == sha1_etag(body)

    got = await client.get(state_url(stateId="s1"), headers=headers())
    assert got.status == 200
    assert await got.read() == body
    assert got.headers["Content-Type"] == "application/json"
    assert got.headers["ETag"] == sha1_etag(body)
    assert parsedate_to_datetime(got.headers["Last-Modified"]) >= before

    head = await client.head(state_url(stateId="s1"), headers=headers())
    assert head.status == 200
    assert head.headers["ETag"] == sha1_etag(body)
    assert "Last-Modified" in head.headers
    assert await head.read() == b""

    missing = await client.get(state_url(stateId="nope"), headers=headers())
    assert missing.status == 404
    assert "nope" in (await missing.json())["error"]


async def test_binary_documents_round_trip_byte_exact(client):
    content = bytes(range(256)) * 3 + b"\r\n\x00"
    agent = json.dumps({"account": {"homePage": "http://example.org", "name": "u-17"}})
    target = url(AGENT_PROFILE, agent=agent, profileId="avatar")
    put = await client.put(target, data=content, headers=headers({"Content-Type": "image/png", **CREATE}))
    assert put.status == 204, await put.text()
    got = await client.get(target, headers=headers())
    assert got.status == 200
    assert await got.read() == content
    assert got.headers["Content-Type"] == "image/png"
    assert got.headers["ETag"] == sha1_etag(content)

    no_type = url(ACTIVITY_PROFILE, activityId=ACTIVITY, profileId="blob")
    put = await client.put(no_type, data=b"\xff\xfe", headers=headers({"Content-Type": "", **CREATE}))
    assert put.status == 204
    got = await client.get(no_type, headers=headers())
    assert await got.read() == b"\xff\xfe"
    assert got.headers["Content-Type"] == "application/octet-stream"


@pytest.mark.parametrize(
    "target",
    [
        url(ACTIVITY_PROFILE, activityId=ACTIVITY, profileId="settings"),
        url(AGENT_PROFILE, agent=json.dumps(AGENT), profileId="settings"),
    ],
)
async def test_profile_concurrency(client, target):
    first, second = b'{"v": 1}', b'{"v": 2}'
    json_type = {"Content-Type": "application/json"}
    created = await client.put(target, data=first, headers=headers({**json_type, **CREATE}))
    assert created.status == 204, await created.text()

    conflict = await client.put(target, data=second, headers=headers(json_type))
    assert conflict.status == 409
    assert "If-Match" in (await conflict.json())["error"]

    stale = await client.put(target, data=second, headers=headers({**json_type, "If-Match": sha1_etag(b"old")}))
    assert stale.status == 412
    exists = await client.put(target, data=second, headers=headers({**json_type, "If-None-Match": "*"}))
    assert exists.status == 412
    stale_post = await client.post(target, data=b'{"w": 1}', headers=headers({**json_type, "If-Match": sha1_etag(b"old")}))
    assert stale_post.status == 412
    got = await client.get(target, headers=headers())
    assert await got.read() == first  # none of the failed writes changed it

    ok = await client.put(target, data=second, headers=headers({**json_type, "If-Match": sha1_etag(first)}))
    assert ok.status == 204
    assert ok.headers["ETag"] == sha1_etag(second)

    stale_delete = await client.delete(target, headers=headers({"If-Match": sha1_etag(first)}))
    assert stale_delete.status == 412
    deleted = await client.delete(target, headers=headers({"If-Match": sha1_etag(second)}))
    assert deleted.status == 204
    assert (await client.get(target, headers=headers())).status == 404

    # If-None-Match: * creates only when absent.
    again = await client.put(target, data=first, headers=headers({**json_type, "If-None-Match": "*"}))
    assert again.status == 204


async def test_state_accepts_writes_without_concurrency_headers_but_honours_them(client):
    json_type = {"Content-Type": "application/json"}
    assert (await client.put(state_url(stateId="s"), data=b'{"a":1}', headers=headers(json_type))).status == 204
    assert (await client.put(state_url(stateId="s"), data=b'{"a":2}', headers=headers(json_type))).status == 204
    stale = await client.put(
        state_url(stateId="s"), data=b'{"a":3}', headers=headers({**json_type, "If-Match": sha1_etag(b'{"a":1}')})
    )
    assert stale.status == 412
    assert await (await client.get(state_url(stateId="s"), headers=headers())).read() == b'{"a":2}'


async def test_post_merges_json_objects(client):
    json_type = {"Content-Type": "application/json"}
    target = url(ACTIVITY_PROFILE, activityId=ACTIVITY, profileId="vars")
    created = await client.post(target, data=b'{"x": "foo", "y": "bar"}', headers=headers(json_type))
    assert created.status == 204, await created.text()
    merged = await client.post(target, data=b'{"x": "bash", "z": "faz"}', headers=headers(json_type))
    assert merged.status == 204
    got = await client.get(target, headers=headers())
    content = await got.read()
    assert json.loads(content) == {"x": "bash", "y": "bar", "z": "faz"}
    assert got.headers["ETag"] == sha1_etag(content) == merged.headers["ETag"]

    for data, content_type in ((b'{"q": 1}', "text/plain"), (b"[1]", "application/json"), (b"{", "application/json")):
        bad = await client.post(target, data=data, headers=headers({"Content-Type": content_type}))
        assert bad.status == 400, (data, content_type)
    assert await (await client.get(target, headers=headers())).read() == content

    plain = url(ACTIVITY_PROFILE, activityId=ACTIVITY, profileId="plain")
    assert (await client.put(plain, data=b"text", headers=headers({"Content-Type": "text/plain", **CREATE}))).status == 204
    into_plain = await client.post(plain, data=b'{"a": 1}', headers=headers(json_type))
    assert into_plain.status == 400
    assert "text/plain" in (await into_plain.json())["error"]


async def test_put_declared_json_must_be_json(client):
    bad = await client.put(state_url(stateId="j"), data=b"{oops", headers=headers({"Content-Type": "application/json"}))
    assert bad.status == 400
    assert (await client.get(state_url(stateId="j"), headers=headers())).status == 404


async def test_state_ids_since_registration_and_delete_all(client):
    json_type = {"Content-Type": "application/json"}
    for state_id in ("a", "b"):
        assert (await client.put(state_url(stateId=state_id), data=b"{}", headers=headers(json_type))).status == 204
    listing = await client.get(state_url(), headers=headers())
    assert await listing.json() == ["a", "b"]
    first_modified = listing.headers["Last-Modified"]
    assert listing.headers["ETag"] == sha1_etag(await listing.read())

    # since is exclusive and compares with the stored time of each document.
    got_b = await client.get(state_url(stateId="b"), headers=headers())
    assert first_modified == got_b.headers["Last-Modified"]
    mark = datetime.now(timezone.utc).isoformat()
    assert (await client.put(state_url(stateId="c"), data=b"{}", headers=headers(json_type))).status == 204
    assert (await client.post(state_url(stateId="a"), data=b'{"n": 1}', headers=headers(json_type))).status == 204
    since = await client.get(state_url(since=mark), headers=headers())
    assert await since.json() == ["a", "c"]
    future = await client.get(state_url(since="2999-01-01T00:00:00Z"), headers=headers())
    assert await future.json() == []
    assert "Last-Modified" not in future.headers

    reg = await client.put(state_url(stateId="r", registration=REGISTRATION), data=b"{}", headers=headers(json_type))
    assert reg.status == 204
    assert await (await client.get(state_url(registration=REGISTRATION), headers=headers())).json() == ["r"]
    # Without registration the context is Activity + Agent: every registration.
    assert await (await client.get(state_url(), headers=headers())).json() == ["a", "b", "c", "r"]
    # The registration is part of a single document's key.
    assert (await client.get(state_url(stateId="r"), headers=headers())).status == 404

    only_reg = await client.delete(state_url(registration=REGISTRATION), headers=headers())
    assert only_reg.status == 204
    assert await (await client.get(state_url(), headers=headers())).json() == ["a", "b", "c"]
    single = await client.delete(state_url(stateId="a"), headers=headers())
    assert single.status == 204
    everything = await client.delete(state_url(), headers=headers())
    assert everything.status == 204
    assert await (await client.get(state_url(), headers=headers())).json() == []
    nothing = await client.delete(state_url(), headers=headers())
    assert nothing.status == 204


async def test_parameters_are_validated(client):
    cases = [
        (STATE + "?" + urllib.parse.urlencode({"activityId": ACTIVITY}), "agent"),
        (state_url(stateId="s", since="2024-01-01T00:00:00Z"), "since"),
        (state_url(registration="not-a-uuid"), "registration"),
        (url(STATE, activityId="no scheme", agent=json.dumps(AGENT)), "activityId"),
        (url(AGENT_PROFILE, agent=json.dumps({"objectType": "Group", "mbox": "mailto:g@example.org"})), "agent"),
        (url(ACTIVITY_PROFILE, activityId=ACTIVITY, agent=json.dumps(AGENT)), "agent"),
    ]
    for target, named in cases:
        response = await client.get(target, headers=headers())
        assert response.status == 400, target
        body = await response.json()
        assert named in body["error"] or named == body["path"], body
    no_id = await client.delete(url(ACTIVITY_PROFILE, activityId=ACTIVITY), headers=headers())
    assert no_id.status == 400
    no_version = await client.get(state_url(), headers={"Authorization": xapi_headers()["Authorization"]})
    assert no_version.status == 400


async def test_tenants_are_isolated(client, database_url):
    other = await add_credential(database_url, "other-tenant-key", "other", ["all"])
    json_type = {"Content-Type": "application/json"}
    assert (await client.put(state_url(stateId="s"), data=b'{"mine": 1}', headers=headers(json_type))).status == 204

    assert (await client.get(state_url(stateId="s"), headers=headers(**other))).status == 404
    assert await (await client.get(state_url(), headers=headers(**other))).json() == []
    theirs = await client.put(state_url(stateId="s"), data=b'{"theirs": 1}', headers=headers(json_type, **other))
    assert theirs.status == 204
    assert (await client.delete(state_url(), headers=headers(**other))).status == 204
    mine = await client.get(state_url(stateId="s"), headers=headers())
    assert await mine.read() == b'{"mine": 1}'
    # A profile written in one tenant is new in the other: no 409 there.
    profile = url(ACTIVITY_PROFILE, activityId=ACTIVITY, profileId="p")
    assert (await client.put(profile, data=b"1", headers=headers(CREATE))).status == 204
    assert (await client.put(profile, data=b"2", headers=headers(CREATE, **other))).status == 204
    assert await (await client.get(profile, headers=headers())).read() == b"1"


async def test_scopes(client, database_url):
    state_only = await add_credential(database_url, "state-only", "default", ["state"])
    reader = await add_credential(database_url, "reader", "default", ["all/read"])
    writer = await add_credential(database_url, "writer", "default", ["statements/write"])
    profile = url(AGENT_PROFILE, agent=json.dumps(AGENT), profileId="p")

    assert (await client.put(state_url(stateId="s"), data=b"x", headers=headers(**state_only))).status == 204
    assert (await client.put(profile, data=b"x", headers=headers(**state_only))).status == 403
    assert (await client.put(profile, data=b"x", headers=headers(CREATE))).status == 204
    assert (await client.get(profile, headers=headers(**reader))).status == 200
    assert (await client.get(state_url(stateId="s"), headers=headers(**reader))).status == 200
    assert (await client.put(profile, data=b"y", headers=headers({"If-Match": "*"}, **reader))).status == 403
    assert (await client.delete(state_url(), headers=headers(**reader))).status == 403
    assert (await client.get(state_url(stateId="s"), headers=headers(**writer))).status == 403


async def test_every_write_is_an_event_and_the_chain_holds(clear_client, database_url):
    # In clear, so the replay below needs no keys (sealed documents replay in
    # tests/unit/test_privacy_seal.py and tests/e2e/test_erasure.py).
    client = clear_client
    json_type = {"Content-Type": "application/json"}
    writes = [
        client.put(state_url(stateId="a"), data=b'{"a": 1}', headers=headers(json_type)),
        client.post(state_url(stateId="a"), data=b'{"b": 2}', headers=headers(json_type)),
        client.put(state_url(stateId="b", registration=REGISTRATION), data=b"\x00\x01", headers=headers()),
        client.post("/xapi/statements", json=statement(), headers=headers()),
        client.put(url(AGENT_PROFILE, agent=json.dumps(AGENT), profileId="p"), data=b"{}", headers=headers({**json_type, **CREATE})),
        client.delete(url(AGENT_PROFILE, agent=json.dumps(AGENT), profileId="p"), headers=headers()),
        client.put(state_url(stateId="c"), data=b"{}", headers=headers(json_type)),
        client.delete(state_url(), headers=headers()),  # deletes a, b and c: one event each
        client.put(url(ACTIVITY_PROFILE, activityId=ACTIVITY, profileId="keep"), data=b"kept", headers=headers(CREATE)),
        # Failed writes append nothing:
        client.put(url(ACTIVITY_PROFILE, activityId=ACTIVITY, profileId="keep"), data=b"no", headers=headers()),
        client.post(state_url(stateId="z"), data=b"[]", headers=headers(json_type)),
        client.delete(state_url(stateId="never-existed"), headers=headers()),
    ]
    statuses = []
    for write in writes:
        response = await write
        statuses.append(response.status)
    assert statuses == [204, 204, 204, 200, 204, 204, 204, 204, 204, 409, 400, 204]

    events, rows = await events_and_documents(database_url)
    assert verify_chain(events) is None
    kinds = [e.event_type for e in events]
    assert kinds == ["document"] * 3 + ["statement"] + ["document"] * 7
    ops = [json.loads(e.payload)["op"] for e in events if e.event_type == DOCUMENT_EVENT]
    assert ops == ["put", "post", "put", "put", "delete", "put", "delete", "delete", "delete", "put"]
    assert all(e.tenant == "default" for e in events)
    assert [e.stored for e in events] == sorted(e.stored for e in events)
    assert len({e.stored for e in events}) == len(events)

    # The documents table is exactly the replay of the document events.
    replayed = replay_documents((e.position, e.tenant, e.event_type, e.stored, bytes(e.payload)) for e in events)
    table = {
        (r["tenant"], r["resource"], r["activity_id"], r["agent_key"], r["registration"], r["document_id"]):
        (bytes(r["content"]), r["content_type"], r["etag"], r["updated"], r["position"])
        for r in rows
    }
    assert table == {k: (v.content, v.content_type, v.etag, v.updated, v.position) for k, v in replayed.items()}
    assert [k[-1] for k in table] == ["keep"]


async def test_relay_publishes_document_events(database_url, nats_control, tmp_path):
    settings = Settings(
        database_url=database_url, nats_url=nats_control.url, relay_enabled=True,
        bootstrap_credential=f"{KEY}:{SECRET}", data_dir=tmp_path,
    )
    app = create_app(settings, database_url=database_url, nats_url=nats_control.url)
    content = b"\x00binary\xff"
    async with TestServer(app) as server, TestClient(server) as client:
        put = await client.put(state_url(stateId="s"), data=content, headers=headers({"Content-Type": "image/gif"}))
        assert put.status == 204
        events, _ = await events_and_documents(database_url)
        [event] = events
        nc = await nats.connect(nats_control.url)
        try:
            js = nc.jetstream()
            sub = await js.pull_subscribe(
                "lrs.events.default.document", stream="LRS_EVENTS",
                config=api.ConsumerConfig(ack_policy=api.AckPolicy.NONE, deliver_policy=api.DeliverPolicy.ALL),
            )
            deadline = asyncio.get_running_loop().time() + 30
            messages = []
            while not messages:
                try:
                    messages = await sub.fetch(batch=1, timeout=1)
                except nats.errors.TimeoutError:
                    assert asyncio.get_running_loop().time() < deadline, "no document event on the stream"
        finally:
            await nc.close()
    [message] = messages
    assert message.subject == "lrs.events.default.document"
    assert message.data == bytes(event.payload)
    assert message.headers["Lrs-Event-Type"] == "document"
    assert message.headers["Lrs-Position"] == str(event.position)
    assert message.headers["Nats-Msg-Id"] == str(event.event_id)
    assert message.headers["Lrs-Hash"] == bytes(event.hash).hex()
    payload = json.loads(message.data)
    assert payload["op"] == "put" and payload["contentType"] == "image/gif" and payload["stateId"] == "s"


async def test_concurrent_creates_exactly_one_wins_and_chain_holds(client, database_url):
    target = url(ACTIVITY_PROFILE, activityId=ACTIVITY, profileId="race")
    creates = [
        client.put(target, data=str(i).encode(), headers=headers({"If-None-Match": "*"})) for i in range(8)
    ]
    posts = [client.post("/xapi/statements", json=statement(), headers=headers()) for _ in range(4)]
    responses = await asyncio.gather(*creates, *posts)
    create_statuses = sorted(r.status for r in responses[:8])
    assert create_statuses == [204] + [412] * 7
    assert all(r.status == 200 for r in responses[8:])
    events, rows = await events_and_documents(database_url)
    assert verify_chain(events) is None
    assert [e.event_type for e in events].count("document") == 1
    [row] = rows
    winner = [r for r in responses[:8] if r.status == 204][0]
    assert row["etag"] == winner.headers["ETag"]
