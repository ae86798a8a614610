"""Communication 1.5.2 "Attachments" in multipart/mixed requests: parts are matched to Attachment Objects
by their SHA-2 hash; the declared ``length`` is the sender's statement about the data, not a condition of
acceptance (1.0.3 text, quoted below; the requests are sent with both version headers)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from aiohttp import MultipartReader

from tests.conformance.support import STATEMENTS, all_statements, get, headers, stmt

BOUNDARY = "conformance-boundary-5b1f"
DATA = "một tệp đính kèm / an attachment".encode()


def attachment(data: bytes, **extra: Any) -> dict[str, Any]:
    return {"usageType": "http://example.com/attachment-usage/test", "display": {"en-US": "A test attachment"},
            "contentType": "text/plain", "length": len(data), "sha2": hashlib.sha256(data).hexdigest(), **extra}


def multipart(statement: dict[str, Any], *datas: bytes) -> bytes:
    def part(data: bytes, head: dict[str, str]) -> bytes:
        return f"--{BOUNDARY}\r\n".encode() + "".join(f"{k}: {v}\r\n" for k, v in head.items()).encode() \
            + b"\r\n" + data + b"\r\n"
    body = part(json.dumps(statement).encode(), {"Content-Type": "application/json"})
    for data in datas:
        body += part(data, {"Content-Type": "text/plain", "Content-Transfer-Encoding": "binary",
                            "X-Experience-API-Hash": hashlib.sha256(data).hexdigest()})
    return body + f"--{BOUNDARY}--\r\n".encode()


async def send(client, body: bytes, version: str):
    return await client.post(STATEMENTS, data=body, headers={
        **headers(version), "Content-Type": f'multipart/mixed; boundary="{BOUNDARY}"'})


@pytest.mark.parametrize("declared", [len(DATA) - 1, len(DATA) + 1000, 0])
@pytest.mark.parametrize("version", ["1.0.3", "2.0.0"])
async def test_1_5_2_s3_b5_parts_are_matched_by_hash_not_by_declared_length(client, declared, version):
    """1.0.3 Communication 1.5.2.s3.b5: "When receiving a PUT or POST with a document type of
    multipart/mixed, an LRS MUST reject batches of Statements having Attachments that neither contain a
    fileUrl nor match a received Attachment part based on their hash." The match is by hash only: an
    Attachment whose ``length`` differs from the bytes of its part is matched all the same, the request
    succeeds, and the LRS keeps (and serves) the data with its true length."""
    statement = stmt(attachments=[attachment(DATA, length=declared)])
    response = await send(client, multipart(statement, DATA), version)
    assert response.status == 200, await response.text()
    [statement_id] = await response.json()

    got = await get(client, {"statementId": statement_id, "attachments": "true"}, version=version)
    assert got.status == 200
    reader = MultipartReader(got.headers, got.content)
    first = await reader.next()
    assert json.loads(await first.read())["attachments"][0]["length"] == declared  # the Statement as sent
    data_part = await reader.next()
    assert data_part.headers["X-Experience-API-Hash"] == hashlib.sha256(DATA).hexdigest()
    assert data_part.headers["Content-Length"] == str(len(DATA))
    assert bytes(await data_part.read()) == DATA


async def test_1_5_2_s3_b5_a_part_with_other_bytes_still_fails_the_hash_match(client):
    """1.0.3 Communication 1.5.2.s3.b5 (as above): what decides is the hash. A part whose bytes do not hash
    to the Attachment's sha2 leaves the Attachment unmatched: 400, nothing stored."""
    statement = stmt(attachments=[attachment(DATA)])
    body = multipart(statement, DATA).replace(DATA, DATA[:-1] + b"!")
    response = await send(client, body, "1.0.3")
    assert response.status == 400
    assert "sha2" in (await response.json())["error"]
    assert await all_statements(client) == []
