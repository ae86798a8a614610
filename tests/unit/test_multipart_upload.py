"""multipart/mixed Statement bodies (Communication 1.5.2) read by lrs.http.multipart,
fed from bytes through aiohttp's own multipart reader (no server)."""

from __future__ import annotations

import asyncio
import hashlib
import json
from typing import Any
from unittest import mock

import pytest
from aiohttp import MultipartReader
from aiohttp.streams import StreamReader

from lrs.http.multipart import (
    check_json_attachments,
    declared_attachments,
    read_upload,
    referenced_attachments,
)
from lrs.xapi.errors import XapiError
from lrs.xapi.statement import parse_statements

BOUNDARY = "abcABC0123'()+_,-./:=?"
ESSAY = b"here is a simple attachment"


def attachment(data: bytes, **extra: Any) -> dict[str, Any]:
    return {
        "usageType": "http://example.com/attachment-usage/test",
        "display": {"en-US": "A test attachment"},
        "contentType": "text/plain",
        "length": len(data),
        "sha2": hashlib.sha256(data).hexdigest(),
        **extra,
    }


def statement(*attachments: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {
        "actor": {"mbox": "mailto:sample.agent@example.com", "objectType": "Agent"},
        "verb": {"id": "http://adlnet.gov/expapi/verbs/answered"},
        "object": {"id": "http://www.example.com/tincan/activities/multipart"},
    }
    if attachments:
        body["attachments"] = list(attachments)
    return body


def part(data: bytes, headers: dict[str, str]) -> bytes:
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return f"--{BOUNDARY}\r\n{head}\r\n".encode() + data + b"\r\n"


def attachment_part(data: bytes, sha2: str | None = None, **headers: str) -> bytes:
    defaults = {
        "Content-Type": "text/plain",
        "Content-Transfer-Encoding": "binary",
        "X-Experience-API-Hash": sha2 or hashlib.sha256(data).hexdigest(),
    }
    defaults.update({k.replace("_", "-"): v for k, v in headers.items()})
    return part(data, {k: v for k, v in defaults.items() if v is not None})


def body(statements: Any, *parts: bytes, first_type: str = "application/json") -> bytes:
    first = part(json.dumps(statements).encode(), {"Content-Type": first_type})
    return first + b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


def reader_of(data: bytes) -> MultipartReader:
    stream = StreamReader(mock.Mock(_reading_paused=False), 2**16, loop=asyncio.get_running_loop())
    stream.feed_data(data)
    stream.feed_eof()
    return MultipartReader({"Content-Type": f'multipart/mixed; boundary="{BOUNDARY}"'}, stream)


def parse(raw: bytes) -> list[dict]:
    return parse_statements(raw, "1.0.3")


async def read(data: bytes, **kwargs: Any):
    kwargs.setdefault("max_bytes", 10 * 1024 * 1024)
    return await read_upload(reader_of(data), parse, **kwargs)


async def rejected(data: bytes, status: int = 400, **kwargs: Any) -> XapiError:
    with pytest.raises(XapiError) as info:
        upload = await read(data, **kwargs)
        upload.close()
    assert info.value.status == status, str(info.value)
    return info.value


# -- accepted ---------------------------------------------------------------------


async def test_statement_with_one_attachment_part():
    upload = await read(body(statement(attachment(ESSAY)), attachment_part(ESSAY)))
    try:
        assert len(upload.statements) == 1 and upload.array is False
        sha2 = hashlib.sha256(ESSAY).hexdigest()
        received = upload.parts[sha2]
        assert (received.length, received.content_type, received.spilled) == (len(ESSAY), "text/plain", False)
        assert received.content_bytes() == ESSAY
    finally:
        upload.close()


SPEC_EXAMPLE = """\
--abcABC0123'()+_,-./:=?
Content-Type:application/json

{
    "actor": {
        "mbox": "mailto:sample.agent@example.com",
        "name": "Sample Agent",
        "objectType": "Agent"
    },
    "verb": {
        "id": "http://adlnet.gov/expapi/verbs/answered",
        "display": {
            "en-US": "answered"
        }
    },
    "object": {
        "id": "http://www.example.com/tincan/activities/multipart",
        "objectType": "Activity",
        "definition": {
            "name": {
                "en-US": "Multi Part Activity"
            },
            "description": {
                "en-US": "Multi Part Activity Description"
            }
        }
    },
    "attachments": [
        {
            "usageType": "http://example.com/attachment-usage/test",
            "display": { "en-US": "A test attachment" },
            "description": { "en-US": "A test attachment (description)" },
            "contentType": "text/plain; charset=ascii",
            "length": 27,
            "sha2": "495395e777cd98da653df9615d09c0fd6bb2f8d4788394cd53c56a3bfdcd848a"
        }
    ]
}
--abcABC0123'()+_,-./:=?
Content-Type:text/plain
Content-Transfer-Encoding:binary
X-Experience-API-Hash:495395e777cd98da653df9615d09c0fd6bb2f8d4788394cd53c56a3bfdcd848a

here is a simple attachment
--abcABC0123'()+_,-./:=?--
"""


async def test_the_specification_example_with_crlf_line_ends():
    # Communication 1.5.2.s6, with the <CRLF> line ends its note asks for.
    upload = await read(SPEC_EXAMPLE.replace("\n", "\r\n").encode())
    received = upload.parts["495395e777cd98da653df9615d09c0fd6bb2f8d4788394cd53c56a3bfdcd848a"]
    assert received.content_bytes() == ESSAY and received.content_type == "text/plain"
    upload.close()


async def test_batch_without_attachments():
    upload = await read(body([statement(), statement()]))
    assert len(upload.statements) == 2 and upload.array and upload.parts == {}


async def test_large_part_spills_to_a_file_and_reads_back_in_chunks():
    data = bytes(range(256)) * 4096  # 1 MiB
    upload = await read(body(statement(attachment(data)), attachment_part(data)), spool_bytes=64 * 1024)
    received = next(iter(upload.parts.values()))
    assert received.spilled and received.content_bytes() is None
    chunks = list(received.iter_content(100_000))
    assert max(len(c) for c in chunks) == 100_000 and b"".join(chunks) == data
    upload.close()
    assert not received.spilled


async def test_same_bytes_in_two_statements_need_one_part_and_are_kept_once():
    shared = attachment(ESSAY)
    upload = await read(body([statement(shared), statement(shared)], attachment_part(ESSAY), attachment_part(ESSAY)))
    assert list(upload.parts) == [shared["sha2"]]
    upload.close()


async def test_file_url_only_attachments_need_no_part():
    upload = await read(body(statement(attachment(ESSAY, fileUrl="http://example.com/essay.txt"))))
    assert upload.parts == {}


async def test_missing_content_transfer_encoding_is_taken_as_binary():
    upload = await read(body(statement(attachment(ESSAY)), attachment_part(ESSAY, Content_Transfer_Encoding=None)))
    assert len(upload.parts) == 1
    upload.close()


@pytest.mark.parametrize("algorithm", ["sha224", "sha384", "sha512"])
async def test_other_sha2_variants_are_recognised_by_length(algorithm):
    sha2 = hashlib.new(algorithm, ESSAY).hexdigest().upper()
    upload = await read(body(statement(attachment(ESSAY, sha2=sha2)), attachment_part(ESSAY, sha2=sha2)))
    assert list(upload.parts) == [sha2.lower()]
    upload.close()


async def test_subStatement_attachments_are_declared_too():
    sub = statement(attachment(ESSAY))
    sub["objectType"] = "SubStatement"
    outer = statement()
    outer["object"] = sub
    upload = await read(body(outer, attachment_part(ESSAY)))
    assert len(upload.parts) == 1
    upload.close()


# -- refused ----------------------------------------------------------------------


async def test_sha2_mismatch():
    wrong = hashlib.sha256(b"other").hexdigest()
    data = body(statement(attachment(ESSAY, sha2=wrong)), attachment_part(ESSAY, sha2=wrong))
    error = await rejected(data)
    assert "sha2 mismatch" in error.message and error.path == "X-Experience-API-Hash"


async def test_length_mismatch_is_not_a_refusal_and_the_true_length_is_kept():
    declared = attachment(ESSAY, length=len(ESSAY) + 1)
    upload = await read(body(statement(declared), attachment_part(ESSAY)))
    assert upload.parts[declared["sha2"]].length == len(ESSAY)
    upload.close()


async def test_missing_part_names_the_attachment():
    error = await rejected(body([statement(), statement(attachment(ESSAY))]))
    assert "no part" in error.message and error.path == "$[1].attachments[0]"


async def test_extra_part_matching_no_attachment():
    error = await rejected(body(statement(attachment(ESSAY)), attachment_part(ESSAY), attachment_part(b"extra")))
    assert "matches the sha2 of no Attachment" in error.message and error.path == "X-Experience-API-Hash"


async def test_part_without_hash_header():
    error = await rejected(body(statement(attachment(ESSAY)), part(ESSAY, {"Content-Type": "text/plain"})))
    assert "X-Experience-API-Hash" in error.message and error.path == "X-Experience-API-Hash"


async def test_hash_header_that_is_not_a_sha2():
    error = await rejected(body(statement(attachment(ESSAY)), attachment_part(ESSAY, sha2="abc")))
    assert "not a hex SHA-2" in error.message and error.path == "X-Experience-API-Hash"


async def test_non_binary_transfer_encoding():
    data = body(statement(attachment(ESSAY)), attachment_part(ESSAY, Content_Transfer_Encoding="base64"))
    error = await rejected(data)
    assert "binary" in error.message and error.path == "Content-Transfer-Encoding"


@pytest.mark.parametrize("first_type", ["text/plain", "multipart/form-data; boundary=x"])
async def test_first_part_must_be_json(first_type):
    error = await rejected(body(statement(), first_type=first_type))
    assert "malformed multipart" in error.message and error.path == "Content-Type"


async def test_invalid_statement_in_the_first_part_is_the_statement_error():
    error = await rejected(body({"actor": {"mbox": "mailto:a@example.com"}}, attachment_part(ESSAY)))
    assert "multipart" not in error.message


async def test_statements_split_over_two_json_parts():
    # The conformance suite's "statements in multiple parts" body: the second
    # JSON part has no hash header.
    second = part(json.dumps(statement()).encode(), {"Content-Type": "application/json"})
    assert "X-Experience-API-Hash" in (await rejected(body(statement(), second))).message


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"no boundary anywhere",
        f"--{BOUNDARY}\r\nContent-Type: application/json\r\n\r\n{{}}".encode(),  # truncated
        body(statement(attachment(ESSAY)), attachment_part(ESSAY))[:-40],  # cut inside the last part
        body(statement(attachment(ESSAY)), attachment_part(ESSAY)).replace(f"--{BOUNDARY}--".encode(), b""),
        part(json.dumps(statement()).encode(), {"Content-Type": "application/json"})
        + f"--{BOUNDARY}\r\nno colon here\r\n\r\nx\r\n--{BOUNDARY}--\r\n".encode(),
    ],
    ids=["empty", "no boundary", "truncated json", "truncated part", "no closing boundary", "bad header line"],
)
async def test_malformed_bodies_are_400(data):
    error = await rejected(data)
    assert error.message.startswith("malformed multipart/mixed body: ") and error.path == "$"


async def test_nested_multipart_part_is_refused():
    nested = part(b"--inner--\r\n", {"Content-Type": "multipart/mixed; boundary=inner", "X-Experience-API-Hash": "0" * 64})
    error = await rejected(body(statement(attachment(ESSAY)), nested))
    assert "multipart" in error.message and error.path == "Content-Type"


async def test_body_over_the_limit_is_413():
    data = bytes(300_000)
    error = await rejected(body(statement(attachment(data)), attachment_part(data)), status=413, max_bytes=200_000)
    assert error.path == "$"  # the body as a whole


async def test_signature_attachment_with_wrong_content_type():
    jws = b"e30.e30.c2ln"
    signature = attachment(jws, usageType="http://adlnet.gov/expapi/attachments/signature")
    error = await rejected(body(statement(signature), attachment_part(jws)))
    assert "application/octet-stream" in error.message and error.path == "$.attachments[0]"


async def test_signature_given_only_by_file_url():
    signature = attachment(
        b"x", usageType="http://adlnet.gov/expapi/attachments/signature",
        contentType="application/octet-stream", fileUrl="http://example.com/sig",
    )
    assert "as a part" in (await rejected(body(statement(signature)))).message


# -- pure helpers -----------------------------------------------------------------


def test_declared_and_referenced_attachments():
    a, b = attachment(b"a"), attachment(b"b", contentType="image/png")
    statements = [statement(a), statement(b, dict(a, sha2=a["sha2"].upper(), contentType="text/html"))]
    declared = declared_attachments(statements, array=True)
    assert [p for p, _ in declared[a["sha2"]]] == ["$[0].attachments[0]", "$[1].attachments[1]"]
    assert referenced_attachments(statements) == {a["sha2"]: "text/plain", b["sha2"]: "image/png"}


def test_json_requests_need_a_file_url_for_every_attachment():
    check_json_attachments([statement(attachment(b"a", fileUrl="http://example.com/a"))], array=False)
    with pytest.raises(XapiError) as info:
        check_json_attachments([statement(), statement(attachment(b"a"))], array=True)
    assert info.value.path == "$[1].attachments[0]" and "multipart/mixed" in info.value.message
    signature = attachment(
        b"s", usageType="http://adlnet.gov/expapi/attachments/signature",
        contentType="application/octet-stream", fileUrl="http://example.com/s",
    )
    with pytest.raises(XapiError, match="signed Statement"):
        check_json_attachments([statement(signature)], array=False)


async def test_framing_without_spaces_leading_crlf_or_final_newline():
    # How the ADL conformance suite frames its signed-statement requests.
    head = f"\r\n--{BOUNDARY}\r\nContent-Type:application/json\r\n\r\n".encode()
    sha2 = hashlib.sha256(ESSAY).hexdigest()
    data_head = (
        f"\r\n--{BOUNDARY}\r\nContent-Type:text/plain\r\nContent-Transfer-Encoding:binary\r\n"
        f"X-Experience-API-Hash:{sha2}\r\n\r\n"
    ).encode()
    raw = head + json.dumps(statement(attachment(ESSAY))).encode() + data_head + ESSAY + f"\r\n--{BOUNDARY}--".encode()
    upload = await read(raw)
    assert upload.parts[sha2].content_bytes() == ESSAY
    upload.close()
