"""The Alternate Request Syntax (Communication 1.3): 1.0.3 only, same checks as headers."""

from __future__ import annotations

import json
import urllib.parse

from lrs.auth import hash_secret
from lrs.http import keys
from lrs.store.credentials import insert_credential
from tests.e2e.conftest import basic_auth, xapi_headers
from tests.e2e.statements import new_id, statement

URL = "/xapi/statements"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def form(**fields: str) -> str:
    return urllib.parse.urlencode(fields)


async def _get_one(client, sid: str):
    response = await client.get(f"{URL}?statementId={sid}", headers=xapi_headers())
    return response.status, (await response.json())


async def _count(client) -> int:
    response = await client.get(f"{URL}?limit=0", headers=xapi_headers())
    assert response.status == 200
    return len((await response.json())["statements"])


async def test_put_with_headers_in_the_http_header(client):
    sid = new_id()
    body = form(statementId=sid, content=json.dumps(statement()))
    response = await client.post(f"{URL}?method=PUT", data=body, headers={**xapi_headers(), **FORM})
    assert response.status == 204, await response.text()
    assert response.headers["X-Experience-API-Version"] == "1.0.3"
    status, stored = await _get_one(client, sid)
    assert status == 200 and stored["id"] == sid


async def test_put_with_authorization_and_version_as_form_fields_only(client):
    sid = new_id()
    body = form(statementId=sid, content=json.dumps(statement()), Authorization=basic_auth(),
                **{"X-Experience-API-Version": "1.0.3"})
    response = await client.post(f"{URL}?method=PUT", data=body, headers=FORM)
    assert response.status == 204, await response.text()
    status, stored = await _get_one(client, sid)
    assert status == 200 and stored["authority"]["account"]["name"] == "e2e-key"


async def test_post_batch_and_get_with_query_parameters_as_form_fields(client):
    ids = [new_id(), new_id()]
    body = form(content=json.dumps([statement(statement_id=i) for i in ids]),
                **{"Content-Type": "application/json"})
    response = await client.post(f"{URL}?method=POST", data=body, headers={**xapi_headers(), **FORM})
    assert response.status == 200, await response.text()
    assert await response.json() == ids

    response = await client.post(f"{URL}?method=GET", data=form(limit="1"), headers={**xapi_headers(), **FORM})
    assert response.status == 200, await response.text()
    result = await response.json()
    assert len(result["statements"]) == 1 and result["more"]
    assert result["statements"][0]["id"] == ids[-1]

    response = await client.post(f"{URL}?method=GET", data=form(statementId=ids[0]),
                                 headers={**xapi_headers(), **FORM})
    assert response.status == 200 and (await response.json())["id"] == ids[0]

    # A GET without any form body works too (long query strings are the point).
    response = await client.post(f"{URL}?method=GET", headers=xapi_headers())
    assert response.status == 200 and len((await response.json())["statements"]) == 2


async def test_form_fields_are_headers_and_win_over_http_headers(client):
    sid = new_id()
    body = form(statementId=sid, content=json.dumps(statement()), **{"X-Experience-API-Version": "0.8"})
    response = await client.post(f"{URL}?method=PUT", data=body, headers={**xapi_headers(), **FORM})
    assert response.status == 400
    assert "X-Experience-API-Version" in (await response.json())["error"]
    assert (await _get_one(client, sid))[0] == 404


async def test_same_authentication_and_scopes_as_header_syntax(client):
    pool = client.app[keys.POOL]
    await insert_credential(pool, key="alt-writer", secret_hash=hash_secret("alt-secret"), tenant="default",
                            scopes=["statements/write"], name="alt-writer")
    sid = new_id()
    wrong = form(statementId=sid, content=json.dumps(statement()), Authorization=basic_auth("e2e-key", "wrong"),
                 **{"X-Experience-API-Version": "1.0.3"})
    response = await client.post(f"{URL}?method=PUT", data=wrong, headers=FORM)
    assert response.status == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic")

    missing = form(statementId=sid, content=json.dumps(statement()), **{"X-Experience-API-Version": "1.0.3"})
    assert (await client.post(f"{URL}?method=PUT", data=missing, headers=FORM)).status == 401

    writer = {"Authorization": basic_auth("alt-writer", "alt-secret"), "X-Experience-API-Version": "1.0.3"}
    response = await client.post(f"{URL}?method=GET", data=form(limit="1", **writer), headers=FORM)
    assert response.status == 403
    response = await client.post(f"{URL}?method=PUT", headers=FORM,
                                 data=form(statementId=sid, content=json.dumps(statement()), **writer))
    assert response.status == 204
    assert (await _get_one(client, sid))[0] == 200


async def test_malformed_alternate_requests_are_400_and_store_nothing(client):
    content = json.dumps(statement())
    headers = {**xapi_headers(), **FORM}
    cases = [
        # other query parameters besides method
        ("POST", f"{URL}?method=PUT&statementId={new_id()}", form(statementId=new_id(), content=content), headers),
        ("POST", f"{URL}?method=GET&limit=1", form(limit="1"), headers),
        # method on something other than POST
        ("PUT", f"{URL}?method=POST", form(content=content), headers),
        # unknown method
        ("POST", f"{URL}?method=PATCH", form(content=content), headers),
        # no content for a PUT
        ("POST", f"{URL}?method=PUT", form(statementId=new_id()), headers),
        ("POST", f"{URL}?method=PUT", "", headers),
        # body that is not form-encoded
        ("POST", f"{URL}?method=PUT", json.dumps({"statementId": new_id(), "content": content}), headers),
        ("POST", f"{URL}?method=PUT", form(statementId=new_id(), content=content), xapi_headers()),
        ("POST", f"{URL}?method=PUT", b"statementId=%FF%FE&content=x", headers),
        # a field twice
        ("POST", f"{URL}?method=POST", form(content=content) + "&content=" + urllib.parse.quote(content), headers),
        # an unknown field becomes an unknown query parameter
        ("POST", f"{URL}?method=POST", form(content=content, bogus="1"), headers),
    ]
    for method, url, data, request_headers in cases:
        response = await client.request(method, url, data=data, headers=request_headers)
        assert response.status == 400, (method, url, data, await response.text())
        payload = await response.json()
        assert payload["status"] == 400 and payload["error"]
    assert await _count(client) == 0


async def test_not_part_of_xapi_2_0(client):
    sid = new_id()
    content = json.dumps(statement())
    response = await client.post(f"{URL}?method=PUT", data=form(statementId=sid, content=content),
                                 headers={**xapi_headers("2.0.0"), **FORM})
    assert response.status == 400
    assert "2.0" in (await response.json())["error"]
    response = await client.post(f"{URL}?method=GET", data=form(limit="1"), headers={**xapi_headers("2.0.0"), **FORM})
    assert response.status == 400
    # The version given as a form field counts the same way.
    body = form(statementId=sid, content=content, Authorization=basic_auth(), **{"X-Experience-API-Version": "2.0.0"})
    response = await client.post(f"{URL}?method=PUT", data=body, headers=FORM)
    assert response.status == 400
    assert (await _get_one(client, sid))[0] == 404


async def test_head_through_the_syntax_answers_like_get_without_a_body(client):
    response = await client.post(f"{URL}?method=HEAD", data=form(limit="1"), headers={**xapi_headers(), **FORM})
    assert response.status == 200
    assert response.headers["X-Experience-API-Version"] == "1.0.3"
    assert "X-Experience-API-Consistent-Through" in response.headers
    assert await response.read() == b""
