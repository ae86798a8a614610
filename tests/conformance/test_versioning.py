"""Communication 3.3 "Versioning" and Data 2.4.10 "Version" where the LRS answers without a negotiated
version, and where a Statement's ``version`` has no patch number; 1.0.3 and 2.0 (IEEE 9274.1.1,
Communication 4.1.7 "Versioning")."""

from __future__ import annotations

import json

import pytest

from tests.conformance.support import (
    STATEMENTS,
    all_statements,
    assert_rejected,
    basic_auth,
    fetch,
    get,
    post,
    stmt,
)


# --- the response's X-Experience-API-Version when the request named none ------------------


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_3_3_s3_b2_a_request_without_a_version_header_is_answered_with_the_latest_version(client, method):
    """1.0.3 Communication 3.3.s3.b1-b2: "The LRS MUST include the "X-Experience-API-Version" header in
    every response." and "The LRS MUST set this header to the latest patch version."; 2.0 4.1.7: "The LRS
    _shall_ set this header to the latest patch version." (3.3.s3.b4.1: "The LRS MUST reject requests
    without a version header"). With no version asked for, the latest version this LRS supports is 2.0.0."""
    data = json.dumps(stmt()).encode() if method == "POST" else None
    response = await client.request(method, STATEMENTS, data=data,
                                    headers={"Authorization": basic_auth(), "Content-Type": "application/json"})
    assert response.status == 400
    assert response.headers["X-Experience-API-Version"] == "2.0.0"
    assert await all_statements(client) == []


async def test_3_3_s3_b2_unauthenticated_and_unversioned_requests_name_2_0_0(client):
    """1.0.3 Communication 3.3.s3.b2 / 2.0 4.1.7: the header is the latest patch version, also on a 401
    to a request that named no version."""
    response = await client.get(STATEMENTS)
    assert response.status == 401
    assert response.headers["X-Experience-API-Version"] == "2.0.0"


@pytest.mark.parametrize(("sent", "answered"), [("1.0.1", "1.0.3"), ("1.0", "1.0.3"), ("2.0", "2.0.0")])
async def test_3_3_s3_b2_a_refused_request_that_named_a_version_keeps_its_family(client, sent, answered):
    """1.0.3 Communication 3.3.s3.b2: "The LRS MUST set this header to the latest patch version." (of the
    version the request follows, even when the request fails authentication)."""
    response = await client.get(STATEMENTS, headers={"X-Experience-API-Version": sent})
    assert response.status == 401
    assert response.headers["X-Experience-API-Version"] == answered


# --- a Statement "version" without a patch number --------------------------------------------


@pytest.mark.parametrize("request_version", ["1.0.3", "2.0.0"])
async def test_2_4_10_s2_b1_statement_version_1_0_is_accepted_as_1_0_0(client, request_version):
    """1.0.3 Data 2.4.10.s2.b1: "Version MUST be formatted as laid out for the API version header in
    Versioning", and Communication 3.3.s3.b3: "The LRS MUST accept requests with a version header of 1.0
    as if the version header was 1.0.0."; 2.4.10.s3.b1: "An LRS MUST accept all Statements where their
    version starts with 1.0. if they otherwise validate." So "1.0" is "1.0.0", in 1.0.3 and 2.0 requests
    (2.0 4.1.7 reads "2.0" as "2.0.0" the same way)."""
    response = await post(client, stmt(version="1.0"), version=request_version)
    assert response.status == 200, await response.text()
    [statement_id] = await response.json()
    assert (await fetch(client, statement_id))["version"] == "1.0.0"


async def test_2_0_4_1_7_statement_version_2_0_is_accepted_as_2_0_0_in_2_0_requests(client):
    """2.0 Communication 4.1.7: "The LRS _shall_ accept requests with a version header of 2.0 as if the
    version header was 2.0.0." (a Statement version is formatted as the header)."""
    response = await post(client, stmt(version="2.0"), version="2.0.0")
    assert response.status == 200, await response.text()
    [statement_id] = await response.json()
    got = await get(client, {"statementId": statement_id}, version="2.0.0")
    assert (await got.json())["version"] == "2.0.0"


@pytest.mark.parametrize("version", ["1.1", "2.0", "1", "1.0.x"])
async def test_2_4_10_s3_b2_other_short_versions_are_still_refused_in_1_0_3(client, version):
    """1.0.3 Data 2.4.10.s3.b2: "An LRS MUST reject all Statements with a version specified that does not
    start with 1.0." (read with patch number: 1.1 is 1.1.0, 2.0 is 2.0.0)."""
    await assert_rejected(client, stmt(version=version), fragment="version")
