"""xAPI-Communication 1 "Requests" (HEAD, alternate syntax, encoding, content types), 3.2 "Error Codes",
3.3 "Versioning" and 4 "Authentication", as they apply to the Statement Resource."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest

from tests.conformance.support import (
    STATEMENTS,
    all_statements,
    assert_rejected,
    basic_auth,
    error_of,
    fetch,
    get,
    headers,
    new_id,
    post,
    store,
    stmt,
)

FORM = "application/x-www-form-urlencoded"


# --- 1.1 HEAD ---------------------------------------------------------------------------


async def test_1_1_s3_b1_head_answers_like_get_without_a_body(client):
    """Communication 1.1.s3.b1: "The LRS MUST respond to any HTTP HEAD request as it would have responded
    to an otherwise identical HTTP GET request except: The message-body MUST be omitted."."""
    [statement_id] = await store(client, stmt())
    for params in ({}, {"statementId": statement_id}, {"statementId": new_id()}):
        got = await get(client, params)
        head = await client.head(STATEMENTS, params=params, headers=headers())
        assert head.status == got.status, params
        assert await head.read() == b""
        assert head.headers.get("Content-Type") == got.headers.get("Content-Type")
        assert head.headers.get("X-Experience-API-Version") == got.headers.get("X-Experience-API-Version")


# --- 1.3 Alternate Request Syntax ---------------------------------------------------------


async def test_1_3_s3_alternate_syntax_put_and_get_statements(client):
    """Communication 1.3.s3.b1-b15: a POST with method=PUT (or GET) in the query string, the content and
    headers as form parameters, "The LRS MUST support the syntax above." (and 2.1.2.s2.b3: the LRS MUST
    differentiate a POST to add a Statement or to list Statements based on the parameters passed)."""
    statement_id = new_id()
    form = {"statementId": statement_id, "content": json.dumps(stmt(result={"response": "Trả lời"})),
            "Authorization": basic_auth(), "X-Experience-API-Version": "1.0.3", "Content-Type": "application/json"}
    response = await client.post(STATEMENTS + "?method=PUT", data=urlencode(form), headers={"Content-Type": FORM})
    assert response.status == 204, await response.text()
    form = {"statementId": statement_id, "Authorization": basic_auth(), "X-Experience-API-Version": "1.0.3"}
    response = await client.post(STATEMENTS + "?method=GET", data=urlencode(form), headers={"Content-Type": FORM})
    assert response.status == 200, await response.text()
    assert (await response.json())["result"]["response"] == "Trả lời"


async def test_1_3_s3_b3_alternate_syntax_allows_no_other_query_parameters(client):
    """Communication 1.3.s3.b3: "The Learning Record Provider MUST NOT include any other query string
    parameters on the request." (the LRS refuses such a request and stores nothing)."""
    form = {"content": json.dumps(stmt()), "Authorization": basic_auth(), "X-Experience-API-Version": "1.0.3"}
    response = await client.post(STATEMENTS + f"?method=PUT&statementId={new_id()}", data=urlencode(form),
                                 headers={"Content-Type": FORM})
    assert response.status == 400
    await error_of(response)
    assert await all_statements(client) == []


# --- 1.4 Encoding --------------------------------------------------------------------------


async def test_1_4_s1_b1_strings_are_utf_8(client):
    """Communication 1.4.s1.b1: "All strings MUST be encoded and interpreted as UTF-8." (non-ASCII text
    round-trips; a body in another encoding is refused)."""
    latin1 = json.dumps(stmt(actor={"name": "José", "mbox": "mailto:a@example.org"}), ensure_ascii=False).encode("latin-1")
    await assert_rejected(client, None, raw=latin1, fragment="UTF-8")
    text = "Nguyễn Văn A — học xong 📚"
    [statement_id] = await store(client, stmt(actor={"name": text, "mbox": "mailto:a@example.org"}))
    assert (await fetch(client, statement_id))["actor"]["name"] == text


# --- 1.5 Content Types ---------------------------------------------------------------------


async def test_1_5_1_s1_b1_json_batches_without_attachments_are_accepted(client):
    """Communication 1.5.1.s1.b1: "When receiving a PUT or POST with a document type of application/json,
    an LRS MUST accept batches of Statements which contain no Attachment Objects."."""
    response = await post(client, [stmt() for _ in range(20)], extra={"Content-Type": "application/json; charset=utf-8"})
    assert response.status == 200
    assert len(await response.json()) == 20


# --- 3.2 Error Codes -----------------------------------------------------------------------


async def test_3_2_s3_b1_missing_or_refused_credentials_are_401(client):
    """Communication 3.2.s3.b1 with 3.2.s2.b2: "401 Unauthorized - Indicates that authentication is
    required, or in the case authentication has been posted in the request, that the given credentials
    have been refused."."""
    body = json.dumps(stmt())
    for auth in (None, basic_auth("e2e-key", "wrong"), basic_auth("nobody", "x"), "Bearer abc", "Basic !!!"):
        extra = {"X-Experience-API-Version": "1.0.3", "Content-Type": "application/json"}
        if auth:
            extra["Authorization"] = auth
        response = await client.post(STATEMENTS, data=body, headers=extra)
        assert response.status == 401, auth
        await error_of(response)
    assert await all_statements(client) == []


async def test_3_2_s3_b2_errors_carry_a_message(client):
    """Communication 3.2.s3.b2: "An LRS SHOULD return a message in the response explaining the cause of
    the error."."""
    response = await post(client, stmt(actor={"mbox": "learner@example.org"}))
    assert response.status == 400
    assert "mbox" in await error_of(response)


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", "application/x-www-form-urlencoded"])
async def test_3_2_s3_b6_content_type_must_match_the_content(client, content_type):
    """Communication 3.2.s3.b6: "The LRS SHOULD* reject any request with 400 Bad Request status where the
    content type header does not match the content included in the request"."""
    response = await client.post(STATEMENTS, data=json.dumps(stmt()),
                                 headers={**headers(), "Content-Type": content_type})
    assert response.status == 400
    await error_of(response)
    assert await all_statements(client) == []


async def test_3_2_s3_b7_unknown_parameters_are_400(client):
    """Communication 3.2.s3.b7: "The LRS MUST reject with 400 Bad Request status any requests that use any
    parameters which the LRS does not recognize in their intended context in this specification."."""
    statement_id = new_id()
    requests = [
        client.get(STATEMENTS, params={"foo": "bar"}, headers=headers()),
        client.get(STATEMENTS, params={"statementId": statement_id, "page": "2"}, headers=headers()),
        client.post(STATEMENTS + "?foo=bar", data=json.dumps(stmt()), headers={**headers(), "Content-Type": "application/json"}),
        client.put(STATEMENTS, params={"statementId": statement_id, "verb": "http://example.org/v"},
                   data=json.dumps(stmt()), headers={**headers(), "Content-Type": "application/json"}),
    ]
    for request in requests:
        response = await request
        assert response.status == 400
        await error_of(response)
    assert await all_statements(client) == []


@pytest.mark.parametrize("name", ["StatementId", "statementID", "VERB", "Agent", "Limit", "Format"])
async def test_3_2_s3_b8_parameters_differing_only_in_case_are_400(client, name):
    """Communication 3.2.s3.b8: "The LRS MUST reject with 400 Bad Request status any requests that use any
    parameters matching parameters described in this specification in all but case."."""
    response = await get(client, {name: "x"})
    assert response.status == 400
    assert name in await error_of(response)


async def test_3_2_s3_b9_a_batch_with_one_bad_statement_is_rejected_whole(client):
    """Communication 3.2.s3.b9: "The LRS MUST reject a batch of statements if any Statement within that
    batch is rejected."."""
    batch = [stmt(), stmt(), stmt(verb={"id": "not an iri"}), stmt()]
    message = await assert_rejected(client, batch)
    assert "[2]" in message


async def test_3_2_s3_b16_reasonable_sizes_are_accepted(client):
    """Communication 3.2.s3.b16: "The LRS MUST be configurable to accept Attachments, Statements or
    documents of any reasonable size" (the defaults take a 500-Statement, ~1 MB batch)."""
    big = [stmt(result={"response": "x" * 1500}) for _ in range(500)]
    response = await post(client, big)
    assert response.status == 200, await response.text()
    assert len(await response.json()) == 500


# --- 3.3 Versioning --------------------------------------------------------------------------


async def test_3_3_s3_b1_every_statement_response_has_the_version_header(client):
    """Communication 3.3.s3.b1: "The LRS MUST include the "X-Experience-API-Version" header in every
    response." (successful Statement Resource responses)."""
    statement_id = new_id()
    for response in (await post(client, stmt(id=statement_id)), await get(client),
                     await get(client, {"statementId": statement_id}),
                     await client.put(STATEMENTS, params={"statementId": new_id()}, data=json.dumps(stmt()),
                                      headers={**headers(), "Content-Type": "application/json"})):
        assert response.headers.get("X-Experience-API-Version") == "1.0.3", response.status


async def test_3_3_s3_b1_error_responses_have_the_version_header_too(client):
    """Communication 3.3.s3.b1: "The LRS MUST include the "X-Experience-API-Version" header in every
    response." (error responses)."""
    responses = [await get(client, {"statementId": new_id()}), await post(client, {"bad": 1}),
                 await client.get(STATEMENTS, headers={"X-Experience-API-Version": "1.0.3"}),
                 await client.get(STATEMENTS, headers={"Authorization": basic_auth()})]
    for response in responses:
        assert response.headers.get("X-Experience-API-Version"), response.status


@pytest.mark.parametrize(("sent", "answered"), [("1.0.0", "1.0.3"), ("1.0.1", "1.0.3"), ("1.0", "1.0.3"),
                                                 ("2.0.0", "2.0.0")])
async def test_3_3_s3_b2_the_header_is_the_latest_patch_version(client, sent, answered):
    """Communication 3.3.s3.b2: "The LRS MUST set this header to the latest patch version."."""
    response = await get(client, version=sent)
    assert response.status == 200
    assert response.headers["X-Experience-API-Version"] == answered


async def test_3_3_s3_b3_version_1_0_is_accepted_as_1_0_0(client):
    """Communication 3.3.s3.b3: "The LRS MUST accept requests with a version header of 1.0 as if the
    version header was 1.0.0."."""
    [statement_id] = (await (await post(client, stmt(), version="1.0")).json())
    assert (await fetch(client, statement_id))["version"] == "1.0.0"


@pytest.mark.parametrize("version", ["1.0.0", "1.0.1", "1.0.2", "1.0.3", "1.0.4"])
async def test_3_3_s3_b5_versions_starting_with_1_0_are_accepted(client, version):
    """Communication 3.3.s3.b5: "The LRS MUST accept requests with a version header starting with 1.0. if
    the request is otherwise valid."."""
    assert (await post(client, stmt(), version=version)).status == 200
    assert (await get(client, version=version)).status == 200


@pytest.mark.parametrize("version", ["0.9", "0.95", "1.1.0", "1.1", "3.0.0", "1", "latest", ""])
async def test_3_3_s3_b4_b6_b7_other_versions_are_rejected_with_400_and_a_description(client, version):
    """Communication 3.3.s3.b4: "The LRS MUST reject requests with version header prior to version 1.0.0";
    b6: "MUST reject requests with a version header of 1.1.0 or greater" (this LRS also follows 2.0.x);
    b7: "MUST make these rejects by responding with a 400 Bad Request error including a short description
    of the problem."."""
    message = await assert_rejected(client, stmt(), version=version)
    assert "version" in message.lower()
    response = await get(client, version=version)
    assert response.status == 400
    assert "version" in (await error_of(response)).lower()


async def test_3_3_s4_b1_a_request_without_the_version_header_is_rejected(client):
    """Communication 3.3.s4.b1: "The Client MUST include the "X-Experience-API-Version" header in every
    request." (the LRS refuses a request without it, with 400 naming the header)."""
    response = await client.post(STATEMENTS, data=json.dumps(stmt()),
                                 headers={"Authorization": basic_auth(), "Content-Type": "application/json"})
    assert response.status == 400
    assert "X-Experience-API-Version" in await error_of(response)
    assert await all_statements(client) == []


# --- 4.0 Authentication ----------------------------------------------------------------------


async def test_4_0_s3_b1_http_basic_authentication_is_supported(client):
    """Communication 4.0.s3.b1: "The LRS MUST support authentication using at least one of the
    authentication methods defined in this specification." (HTTP Basic)."""
    response = await client.get(STATEMENTS, headers={"Authorization": basic_auth(), "X-Experience-API-Version": "1.0.3"})
    assert response.status == 200
