"""The Statements resource through HTTP, against a real PostgreSQL."""

from __future__ import annotations

import asyncio
import urllib.parse

import msgspec

from tests.e2e.conftest import basic_auth, xapi_headers
from tests.e2e.statements import VERB_COMPLETED, new_id, statement, voiding

URL = "/xapi/statements"


async def _get(client, **params):
    query = urllib.parse.urlencode(params)
    response = await client.get(f"{URL}?{query}", headers=xapi_headers())
    return response, await response.json()


async def test_post_single_statement_then_get_it_back(client):
    sid = new_id()
    response = await client.post(URL, json=statement(statement_id=sid), headers=xapi_headers())
    assert response.status == 200, await response.text()
    assert await response.json() == [sid]
    assert "X-Experience-API-Consistent-Through" in response.headers
    assert response.headers["X-Experience-API-Version"] == "1.0.3"

    response, body = await _get(client, statementId=sid)
    assert response.status == 200
    assert body["id"] == sid
    assert body["stored"].endswith("Z")
    assert body["timestamp"] == body["stored"]  # set to stored when the client sent none
    assert body["authority"]["account"]["name"] == "e2e-key"
    assert body["version"].startswith("1.0")
    assert "X-Experience-API-Consistent-Through" in response.headers


async def test_post_array_assigns_missing_ids_in_order(client):
    given = new_id()
    batch = [statement(), statement(statement_id=given), statement()]
    response = await client.post(URL, json=batch, headers=xapi_headers())
    assert response.status == 200
    ids = await response.json()
    assert len(ids) == 3 and ids[1] == given and len(set(ids)) == 3
    for sid in ids:
        got, _ = await _get(client, statementId=sid)
        assert got.status == 200


async def test_put_with_statement_id_returns_204_and_is_idempotent(client):
    sid = new_id()
    body = statement()
    first = await client.put(f"{URL}?statementId={sid}", json=body, headers=xapi_headers())
    assert first.status == 204, await first.text()
    again = await client.put(f"{URL}?statementId={sid}", json=body, headers=xapi_headers())
    assert again.status == 204
    response, stored = await _get(client, statementId=sid)
    assert stored["id"] == sid


async def test_same_id_different_content_is_409_and_changes_nothing(client):
    sid = new_id()
    assert (await client.post(URL, json=statement(statement_id=sid), headers=xapi_headers())).status == 200
    _, before = await _get(client, statementId=sid)
    other = statement(statement_id=sid, activity="http://example.org/other")
    conflict = await client.post(URL, json=other, headers=xapi_headers())
    assert conflict.status == 409
    body = await conflict.json()
    assert sid in body["error"]
    assert body["path"] == "$.id"  # one statement sent, not an array: the path says so
    in_array = await client.post(URL, json=[statement(), other], headers=xapi_headers())
    assert in_array.status == 409 and (await in_array.json())["path"] == "$[1].id"
    put = await client.put(f"{URL}?statementId={sid}", json=other, headers=xapi_headers())
    assert put.status == 409
    assert (await put.json())["path"] == "$.id"
    _, after = await _get(client, statementId=sid)
    assert after == before


async def test_equivalent_repost_is_accepted_without_a_second_copy(client):
    sid = new_id()
    body = statement(statement_id=sid)
    assert (await client.post(URL, json=body, headers=xapi_headers())).status == 200
    # Different timestamp and version are ignored by the spec's comparison.
    again = dict(body, timestamp="2020-01-01T00:00:00Z", version="1.0.3")
    response = await client.post(URL, json=again, headers=xapi_headers())
    assert response.status == 200
    assert await response.json() == [sid]
    response, result = await _get(client, verb=VERB_COMPLETED, limit=50)
    assert [s["id"] for s in result["statements"]].count(sid) == 1


async def test_one_bad_statement_rejects_the_whole_batch(client):
    good, also_good = new_id(), new_id()
    bad = statement()
    bad["actor"]["mbox"] = "learner@example.org"  # not a mailto IRI
    response = await client.post(
        URL, json=[statement(statement_id=good), bad, statement(statement_id=also_good)], headers=xapi_headers()
    )
    assert response.status == 400
    error = await response.json()
    assert error["path"].startswith("$[1].actor")
    for sid in (good, also_good):
        got, _ = await _get(client, statementId=sid)
        assert got.status == 404


async def test_duplicate_ids_within_one_batch_are_400(client):
    sid = new_id()
    response = await client.post(URL, json=[statement(statement_id=sid), statement(statement_id=sid)],
                                 headers=xapi_headers())
    assert response.status == 400
    assert sid in (await response.json())["error"]
    got, _ = await _get(client, statementId=sid)
    assert got.status == 404


async def test_concurrent_requests_409_does_not_fail_the_others(client):
    sid = new_id()
    assert (await client.post(URL, json=statement(statement_id=sid), headers=xapi_headers())).status == 200
    conflicting = statement(statement_id=sid, activity="http://example.org/different")
    good_ids = [new_id() for _ in range(20)]
    responses = await asyncio.gather(
        client.post(URL, json=[statement(statement_id=new_id()), conflicting], headers=xapi_headers()),
        *(client.post(URL, json=statement(statement_id=g), headers=xapi_headers()) for g in good_ids),
    )
    assert responses[0].status == 409
    assert [r.status for r in responses[1:]] == [200] * len(good_ids)
    for g in good_ids:
        got, _ = await _get(client, statementId=g)
        assert got.status == 200


async def test_version_header_is_required_and_both_versions_are_accepted(client):
    auth = {"Authorization": basic_auth()}
    missing = await client.post(URL, json=statement(), headers=auth)
    assert missing.status == 400
    assert "X-Experience-API-Version" in (await missing.json())["error"]
    old = await client.post(URL, json=statement(), headers={**auth, "X-Experience-API-Version": "0.95"})
    assert old.status == 400
    for version, echoed in (("1.0.3", "1.0.3"), ("1.0.0", "1.0.3"), ("2.0.0", "2.0.0")):
        response = await client.post(URL, json=statement(), headers={**auth, "X-Experience-API-Version": version})
        assert response.status == 200, (version, await response.text())
        assert response.headers["X-Experience-API-Version"] == echoed


async def test_unknown_key_and_wrong_secret_get_the_same_401(client):
    unknown = await client.get(URL, headers=xapi_headers(key="nobody", secret="x"))
    wrong = await client.get(URL, headers=xapi_headers(secret="wrong"))
    missing = await client.get(URL, headers={"X-Experience-API-Version": "1.0.3"})
    assert unknown.status == wrong.status == missing.status == 401
    assert await unknown.json() == await wrong.json()
    assert unknown.headers["WWW-Authenticate"].startswith("Basic")


async def test_about_needs_no_credentials_and_lists_both_versions(client):
    response = await client.get("/xapi/about")
    assert response.status == 200
    assert set((await response.json())["version"]) >= {"1.0.3", "2.0.0"}


async def test_filters_and_more_paging(client):
    registration = new_id()
    learner_a, learner_b = "a@example.org", "b@example.org"
    ids_a = []
    for i in range(7):
        sid = new_id()
        ids_a.append(sid)
        body = statement(statement_id=sid, learner=learner_a, registration=registration,
                         parent="http://example.org/courses/digital-literacy")
        assert (await client.post(URL, json=body, headers=xapi_headers())).status == 200
    other = statement(learner=learner_b, activity="http://example.org/other")
    assert (await client.post(URL, json=other, headers=xapi_headers())).status == 200

    agent = msgspec.json.encode({"mbox": f"mailto:{learner_a}"}).decode()
    seen: list[str] = []
    response, page = await _get(client, agent=agent, limit=3)
    assert response.status == 200
    while True:
        seen.extend(s["id"] for s in page["statements"])
        if not page["more"]:
            break
        response = await client.get(page["more"], headers=xapi_headers())
        assert response.status == 200
        page = await response.json()
    assert seen == list(reversed(ids_a))  # newest first, each once

    _, asc = await _get(client, agent=agent, ascending="true", limit=0)
    assert [s["id"] for s in asc["statements"]] == ids_a

    _, by_reg = await _get(client, registration=registration)
    assert {s["id"] for s in by_reg["statements"]} == set(ids_a)

    _, direct = await _get(client, activity="http://example.org/courses/digital-literacy")
    assert direct["statements"] == []
    _, related = await _get(client, activity="http://example.org/courses/digital-literacy",
                            related_activities="true")
    assert {s["id"] for s in related["statements"]} == set(ids_a)

    _, ids_format = await _get(client, agent=agent, limit=1, format="ids")
    assert set(ids_format["statements"][0]["actor"]) <= {"objectType", "mbox"}


async def test_more_cursor_is_bound_to_its_credential(client):
    for _ in range(3):
        assert (await client.post(URL, json=statement(), headers=xapi_headers())).status == 200
    _, page = await _get(client, limit=1)
    assert page["more"]
    tampered = page["more"][:-2] + ("AA" if not page["more"].endswith("AA") else "BB")
    response = await client.get(tampered, headers=xapi_headers())
    assert response.status in (400, 404)


async def test_since_and_until_use_stored_time(client):
    first = new_id()
    assert (await client.post(URL, json=statement(statement_id=first), headers=xapi_headers())).status == 200
    _, got = await _get(client, statementId=first)
    stored = got["stored"]
    second = new_id()
    assert (await client.post(URL, json=statement(statement_id=second), headers=xapi_headers())).status == 200
    _, since = await _get(client, since=stored)
    assert [s["id"] for s in since["statements"]] == [second]
    _, until = await _get(client, until=stored)
    assert [s["id"] for s in until["statements"]] == [first]


async def test_voiding_hides_the_target_from_queries(client):
    target, voider = new_id(), new_id()
    assert (await client.post(URL, json=statement(statement_id=target), headers=xapi_headers())).status == 200
    response = await client.post(URL, json=voiding(target, statement_id=voider), headers=xapi_headers())
    assert response.status == 200, await response.text()

    got, _ = await _get(client, statementId=target)
    assert got.status == 404
    got, body = await _get(client, voidedStatementId=target)
    assert got.status == 200 and body["id"] == target
    _, listing = await _get(client, limit=0)
    ids = [s["id"] for s in listing["statements"]]
    assert target not in ids and voider in ids


async def test_voiding_a_voiding_statement_is_rejected(client):
    target, voider = new_id(), new_id()
    await client.post(URL, json=statement(statement_id=target), headers=xapi_headers())
    await client.post(URL, json=voiding(target, statement_id=voider), headers=xapi_headers())
    response = await client.post(URL, json=voiding(voider), headers=xapi_headers())
    assert response.status == 400


async def test_bad_query_parameters_are_named(client):
    response, body = await _get(client, verb="not an iri")
    assert response.status == 400 and body["path"] == "verb"
    response, body = await _get(client, limit="-1")
    assert response.status == 400 and body["path"] == "limit"
    response, body = await _get(client, statementId=new_id(), verb=VERB_COMPLETED)
    assert response.status == 400


async def test_non_json_and_empty_bodies_are_400(client):
    response = await client.post(URL, data=b"not json", headers={**xapi_headers(), "Content-Type": "application/json"})
    assert response.status == 400
    response = await client.post(URL, data=b"", headers={**xapi_headers(), "Content-Type": "application/json"})
    assert response.status == 400
    response = await client.post(URL, data=b"{}", headers={**xapi_headers(), "Content-Type": "text/plain"})
    assert response.status == 400
    body = await response.json()
    assert body["path"] == "Content-Type" and "text/plain" in body["error"], body  # the header to correct
