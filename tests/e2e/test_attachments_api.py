"""Attachments and signed Statements through HTTP (Communication 1.5.2, 2.1.3;
Data 2.4.11, 2.6), against a real PostgreSQL."""

from __future__ import annotations

import copy
import hashlib
import json
import random
import resource
import tracemalloc
import urllib.parse
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import pytest
from aiohttp import MultipartReader
from aiohttp.test_utils import TestClient, TestServer
from cryptography.hazmat.primitives.asymmetric import rsa

from lrs.config import Settings
from lrs.service import create_app
from tests.e2e.conftest import KEY, SECRET, xapi_headers
from tests.e2e.statements import new_id, statement
from tests.unit.test_signature import sign

URL = "/xapi/statements"
BOUNDARY = "lrs-e2e-boundary-0123456789"
SIGNATURE_USAGE = "http://adlnet.gov/expapi/attachments/signature"
ESSAY = b"here is a simple attachment"
PHOTO = bytes(range(256)) * 40


def attachment(data: bytes, *, content_type: str = "text/plain", **extra: Any) -> dict[str, Any]:
    return {
        "usageType": "http://example.com/attachment-usage/test",
        "display": {"en-US": "A test attachment"},
        "contentType": content_type,
        "length": len(data),
        "sha2": hashlib.sha256(data).hexdigest(),
        **extra,
    }


def with_attachments(*attachments: dict[str, Any], statement_id: str | None = None) -> dict[str, Any]:
    body = statement(statement_id=statement_id or new_id())
    body["attachments"] = list(attachments)
    return body


def part(data: bytes, headers: dict[str, str]) -> bytes:
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return f"--{BOUNDARY}\r\n{head}\r\n".encode() + data + b"\r\n"


def data_part(data: bytes, *, sha2: str | None = None, content_type: str = "text/plain") -> bytes:
    return part(
        data,
        {
            "Content-Type": content_type,
            "Content-Transfer-Encoding": "binary",
            "X-Experience-API-Hash": sha2 or hashlib.sha256(data).hexdigest(),
        },
    )


def multipart_body(statements: Any, *parts: bytes) -> bytes:
    first = part(json.dumps(statements).encode(), {"Content-Type": "application/json"})
    return first + b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


def multipart_headers(boundary: str = BOUNDARY) -> dict[str, str]:
    return {**xapi_headers(), "Content-Type": f'multipart/mixed; boundary="{boundary}"'}


async def post(client: TestClient, body: bytes, headers: dict[str, str] | None = None):
    return await client.post(URL, data=body, headers=headers or multipart_headers())


async def get(client: TestClient, **params: str):
    return await client.get(f"{URL}?{urllib.parse.urlencode(params)}", headers=xapi_headers())


async def read_multipart(response) -> tuple[Any, list[tuple[dict[str, str], bytes]]]:
    """The JSON part (decoded) and the (headers, bytes) of each further part."""
    reader = MultipartReader(response.headers, response.content)
    first = await reader.next()
    assert first is not None and first.headers["Content-Type"] == "application/json"
    payload = json.loads(await first.read())
    parts = []
    while (item := await reader.next()) is not None:
        parts.append((dict(item.headers), bytes(await item.read())))
    return payload, parts


async def stored_counts(database_url: str) -> tuple[int, int]:
    conn = await asyncpg.connect(database_url)
    try:
        statements = await conn.fetchval("SELECT count(*) FROM statements")
        attachments = await conn.fetchval("SELECT count(*) FROM attachments")
        return statements, attachments
    finally:
        await conn.close()


async def assert_refused(client, database_url, body: bytes, needle: str, headers=None) -> None:
    response = await post(client, body, headers)
    text = await response.text()
    assert response.status == 400, text
    assert needle in text, text
    assert await stored_counts(database_url) == (0, 0)


# -- storing ----------------------------------------------------------------------


async def test_statement_with_attachments_round_trips_through_get(client, database_url):
    stmt = with_attachments(attachment(ESSAY), attachment(PHOTO, content_type="image/png"))
    response = await post(client, multipart_body(stmt, data_part(ESSAY), data_part(PHOTO, content_type="image/png")))
    assert response.status == 200, await response.text()
    assert await response.json() == [stmt["id"]]
    assert await stored_counts(database_url) == (1, 2)

    response = await get(client, statementId=stmt["id"], attachments="true")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("multipart/mixed; boundary=")
    assert "X-Experience-API-Consistent-Through" in response.headers
    payload, parts = await read_multipart(response)
    assert payload["id"] == stmt["id"] and payload["attachments"] == stmt["attachments"]
    assert [(h["Content-Type"], h["X-Experience-API-Hash"], h["Content-Transfer-Encoding"], data) for h, data in parts] == [
        ("text/plain", hashlib.sha256(ESSAY).hexdigest(), "binary", ESSAY),
        ("image/png", hashlib.sha256(PHOTO).hexdigest(), "binary", PHOTO),
    ]


async def test_get_without_attachments_stays_json(client):
    stmt = with_attachments(attachment(ESSAY))
    assert (await post(client, multipart_body(stmt, data_part(ESSAY)))).status == 200
    for params in ({"statementId": stmt["id"]}, {"statementId": stmt["id"], "attachments": "false"}, {"attachments": "false"}):
        response = await get(client, **params)
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("application/json")
        assert ESSAY.decode() not in await response.text()


async def test_statement_list_with_attachments_has_each_stored_blob_once(client, database_url):
    shared = attachment(ESSAY)
    first = with_attachments(shared)
    second = with_attachments(shared, attachment(b"only a link", fileUrl="http://example.com/link.txt"))
    body = multipart_body([first, second], data_part(ESSAY))
    assert (await post(client, body)).status == 200
    # The same bytes again in a later request: still one row.
    third = with_attachments(shared)
    assert (await post(client, multipart_body(third, data_part(ESSAY)))).status == 200
    assert await stored_counts(database_url) == (3, 1)

    response = await get(client, attachments="true", limit="10")
    assert response.status == 200
    payload, parts = await read_multipart(response)
    assert {s["id"] for s in payload["statements"]} == {first["id"], second["id"], third["id"]}
    assert payload["more"] == ""
    # The fileUrl-only attachment has no stored data, so no part.
    assert [(h["X-Experience-API-Hash"], data) for h, data in parts] == [(shared["sha2"], ESSAY)]


async def test_put_with_multipart(client, database_url):
    sid = new_id()
    stmt = with_attachments(attachment(ESSAY))
    del stmt["id"]
    response = await client.put(f"{URL}?statementId={sid}", data=multipart_body(stmt, data_part(ESSAY)), headers=multipart_headers())
    assert response.status == 204, await response.text()
    payload, parts = await read_multipart(await get(client, statementId=sid, attachments="true"))
    assert payload["id"] == sid and parts[0][1] == ESSAY


async def test_file_url_only_attachments_are_accepted_and_never_fetched(client, database_url):
    linked = attachment(ESSAY, fileUrl="http://127.0.0.1:9/never-fetched.txt")
    as_json = with_attachments(linked)
    response = await client.post(URL, json=as_json, headers=xapi_headers())
    assert response.status == 200, await response.text()
    as_multipart = with_attachments(linked)
    assert (await post(client, multipart_body(as_multipart))).status == 200
    assert await stored_counts(database_url) == (2, 0)
    payload, parts = await read_multipart(await get(client, statementId=as_json["id"], attachments="true"))
    assert payload["attachments"] == [linked] and parts == []


async def test_multipart_without_attachments_is_accepted(client):
    assert (await post(client, multipart_body([statement(), statement()]))).status == 200


# -- refusing: 400 and nothing stored --------------------------------------------


async def test_sha2_mismatch(client, database_url):
    wrong = hashlib.sha256(b"something else").hexdigest()
    stmt = with_attachments(attachment(ESSAY, sha2=wrong))
    await assert_refused(client, database_url, multipart_body(stmt, data_part(ESSAY, sha2=wrong)), "sha2 mismatch")


async def test_length_mismatch_is_accepted_and_the_true_length_recorded(client, database_url):
    # Parts are matched by sha2 only (1.5.2.s3.b5); a wrong `length` is the sender's mistake.
    stmt = with_attachments(attachment(ESSAY, length=len(ESSAY) - 1))
    response = await post(client, multipart_body(stmt, data_part(ESSAY)))
    assert response.status == 200, await response.text()
    assert await stored_counts(database_url) == (1, 1)
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SELECT length FROM attachments") == len(ESSAY)
    finally:
        await conn.close()
    payload, parts = await read_multipart(await get(client, statementId=stmt["id"], attachments="true"))
    assert parts[0][1] == ESSAY and parts[0][0]["Content-Length"] == str(len(ESSAY))


async def test_missing_part(client, database_url):
    stmt = with_attachments(attachment(ESSAY), attachment(PHOTO))
    await assert_refused(client, database_url, multipart_body(stmt, data_part(ESSAY)), "no part carries the data")


async def test_extra_part(client, database_url):
    stmt = with_attachments(attachment(ESSAY))
    body = multipart_body(stmt, data_part(ESSAY), data_part(PHOTO))
    await assert_refused(client, database_url, body, "matches the sha2 of no Attachment")


async def test_json_request_with_attachment_lacking_file_url(client, database_url):
    response = await client.post(URL, json=with_attachments(attachment(ESSAY)), headers=xapi_headers())
    assert response.status == 400
    assert "fileUrl" in (await response.json())["error"]
    assert await stored_counts(database_url) == (0, 0)


async def test_no_boundary_parameter(client, database_url):
    body = multipart_body(with_attachments(attachment(ESSAY)), data_part(ESSAY))
    headers = {**xapi_headers(), "Content-Type": "multipart/mixed"}
    await assert_refused(client, database_url, body, "boundary", headers)


async def test_truncated_body(client, database_url):
    body = multipart_body(with_attachments(attachment(PHOTO)), data_part(PHOTO))
    await assert_refused(client, database_url, body[: len(body) // 2], "truncated")


async def test_boundary_that_does_not_match_the_body(client, database_url):
    body = multipart_body(with_attachments(attachment(ESSAY)), data_part(ESSAY))
    await assert_refused(client, database_url, body, "malformed multipart", multipart_headers("other-boundary"))


async def test_multipart_form_data_is_not_a_statement_request(client, database_url):
    body = multipart_body(with_attachments(attachment(ESSAY)), data_part(ESSAY))
    headers = {**xapi_headers(), "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    await assert_refused(client, database_url, body, "multipart/mixed", headers)


async def test_one_bad_statement_in_a_batch_stores_no_attachment(client, database_url):
    good = with_attachments(attachment(ESSAY))
    bad = with_attachments(attachment(PHOTO))
    bad["verb"] = {"id": "not an iri"}
    await assert_refused(client, database_url, multipart_body([good, bad], data_part(ESSAY), data_part(PHOTO)), "verb")


# -- signed statements ---------------------------------------------------------


@pytest.fixture(scope="module")
def signing_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def signed_request(original: dict[str, Any], jws: bytes, received: dict[str, Any] | None = None) -> bytes:
    sent = copy.deepcopy(received or original)
    sent.setdefault("attachments", []).append(
        attachment(jws, content_type="application/octet-stream", usageType=SIGNATURE_USAGE)
    )
    return multipart_body(sent, data_part(jws, content_type="application/octet-stream"))


async def test_signed_statement_is_stored_with_its_signature(client, database_url, signing_key):
    original = statement(statement_id=new_id())
    jws = sign(original, signing_key, alg="RS384", x5c_key=signing_key)
    response = await post(client, signed_request(original, jws))
    assert response.status == 200, await response.text()
    payload, parts = await read_multipart(await get(client, statementId=original["id"], attachments="true"))
    assert payload["attachments"][0]["usageType"] == SIGNATURE_USAGE
    assert parts[0][1] == jws


async def test_tampered_signed_statement_is_refused(client, database_url, signing_key):
    original = statement(statement_id=new_id())
    jws = sign(original, signing_key, x5c_key=signing_key)
    tampered = copy.deepcopy(original)
    tampered["actor"]["mbox"] = "mailto:someone.else@example.org"
    await assert_refused(client, database_url, signed_request(original, jws, tampered), "does not match")


async def test_signed_statement_with_a_forbidden_algorithm_is_refused(client, database_url, signing_key):
    original = statement(statement_id=new_id())
    jws = sign(original, signing_key, alg="HS256")
    await assert_refused(client, database_url, signed_request(original, jws), "not allowed")


# -- a large attachment in bounded memory -----------------------------------------

LARGE = 50 * 1024 * 1024
CHUNK = 256 * 1024


def large_chunks() -> Iterator[bytes]:
    rng = random.Random(20240501)
    for _ in range(LARGE // CHUNK):
        yield rng.randbytes(CHUNK)


@pytest.fixture
async def roomy_client(database_url: str) -> AsyncIterator[TestClient]:
    settings = Settings(
        database_url=database_url,
        nats_url=None,
        relay_enabled=False,
        bootstrap_credential=f"{KEY}:{SECRET}",
        max_body_bytes=LARGE + 1024 * 1024,
    )
    app = create_app(settings, database_url=database_url, nats_url=None)
    async with TestServer(app) as server, TestClient(server) as test_client:
        yield test_client


async def test_fifty_megabyte_attachment_streams_in_and_out_in_bounded_memory(roomy_client, database_url):
    digest = hashlib.sha256()
    for chunk in large_chunks():
        digest.update(chunk)
    sha2 = digest.hexdigest()
    stmt = with_attachments(attachment(b"", content_type="application/octet-stream", length=LARGE, sha2=sha2))
    head = part(json.dumps(stmt).encode(), {"Content-Type": "application/json"})[:-2]  # keep CRLF for below
    data_head = (
        f"\r\n--{BOUNDARY}\r\nContent-Type: application/octet-stream\r\n"
        f"Content-Transfer-Encoding: binary\r\nX-Experience-API-Hash: {sha2}\r\n\r\n"
    ).encode()

    async def body() -> AsyncIterator[bytes]:
        yield head + data_head
        for chunk in large_chunks():
            yield chunk
        yield f"\r\n--{BOUNDARY}--\r\n".encode()

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    tracemalloc.start()
    try:
        response = await roomy_client.post(URL, data=body(), headers=multipart_headers())
        assert response.status == 200, await response.text()

        response = await roomy_client.get(
            f"{URL}?statementId={stmt['id']}&attachments=true", headers=xapi_headers()
        )
        assert response.status == 200
        reader = MultipartReader(response.headers, response.content)
        first = await reader.next()
        assert json.loads(await first.read())["id"] == stmt["id"]
        blob = await reader.next()
        assert blob.headers["X-Experience-API-Hash"] == sha2
        received, length = hashlib.sha256(), 0
        while not blob.at_eof():
            chunk = await blob.read_chunk(CHUNK)
            received.update(chunk)
            length += len(chunk)
        assert await reader.next() is None
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    rss_growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - rss_before * 1024

    assert (length, received.hexdigest()) == (LARGE, sha2)
    assert await stored_counts(database_url) == (1, 1)
    # Client and server share this process: neither side may hold the 50 MB.
    assert peak < LARGE // 4, f"peak traced allocation {peak / 2**20:.1f} MiB"
    assert rss_growth < LARGE, f"peak RSS grew by {rss_growth / 2**20:.1f} MiB"


async def test_multipart_response_carries_the_api_headers(client):
    stmt = with_attachments(attachment(ESSAY))
    assert (await post(client, multipart_body(stmt, data_part(ESSAY)))).status == 200
    response = await get(client, statementId=stmt["id"], attachments="true")
    assert response.status == 200
    assert response.headers["X-Experience-API-Version"] == "1.0.3"
    assert "X-Request-ID" in response.headers
    await response.read()
