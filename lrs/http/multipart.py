"""Statements with attachment data: ``multipart/mixed`` in and out (Communication 1.5.2).

Reading (PUT/POST ``/xapi/statements``) streams the body with aiohttp's
multipart reader, one chunk at a time, so memory stays bounded whatever the
attachment sizes:

1. The first part MUST be ``application/json`` and holds the Statements
   (1.5.2.s2.b2.b1); it is validated before any attachment data is read
   ("the LRS decides whether to accept ... based on the first part").
2. Every further part MUST carry ``X-Experience-API-Hash`` (b3) naming the
   sha2 of an Attachment declared in the Statements, and
   ``Content-Transfer-Encoding: binary`` (b4; a missing header is taken as
   binary, 1.5.2.s3.b6, any other value is refused).  Its bytes are hashed
   with the SHA-2 variant the hash's length names while they stream into a
   spool (memory up to :data:`SPOOL_BYTES`, then a temporary file); the
   digest must match the header.  Parts are matched to Attachments by hash
   only (1.5.2.s1.b4, 1.5.2.s3.b5): a declared ``length`` that differs from
   the bytes received does not fail the request, and the stored attachment
   records the true length (what GET serves as the part's Content-Length).
3. Every Attachment without a ``fileUrl`` must have received a part
   (1.5.2.s3.b5).  The same bytes sent twice are accepted and kept once.
4. Signature attachments (Data 2.6) are checked by :mod:`lrs.xapi.signature`.

Anything else wrong with the body (no boundary, a missing closing boundary,
a truncated part, a nested multipart) is a 400 naming the problem; more bytes
than the request limit is a 413.  Each error's ``path`` names the header at
fault (the request's or a part's ``Content-Type``, a part's
``X-Experience-API-Hash`` or ``Content-Transfer-Encoding``; the message says
which part), ``$`` for the body as a whole, or the JSON path in the
Statements.  ``fileUrl`` is never fetched.

Writing (GET with ``attachments=true``) streams a ``multipart/mixed``
response: the Statement JSON first, then one part per distinct sha2 the
returned Statements reference and this tenant has stored, read from
PostgreSQL a slice at a time.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from aiohttp import BodyPartReader, MultipartReader, web
from aiohttp.helpers import parse_mimetype
from aiohttp.http_exceptions import HttpProcessingError

from lrs.store import attachments as attachment_store
from lrs.xapi.errors import XapiError
from lrs.xapi.signature import SIGNATURE_CONTENT_TYPE, is_signature, verify_signed_statement

__all__ = [
    "CHUNK_BYTES",
    "SPOOL_BYTES",
    "ReceivedPart",
    "StatementUpload",
    "check_json_attachments",
    "declared_attachments",
    "is_multipart_mixed",
    "read_statement_upload",
    "read_upload",
    "referenced_attachments",
    "statements_response",
]

HASH_HEADER = "X-Experience-API-Hash"
CHUNK_BYTES = 256 * 1024
SPOOL_BYTES = 1024 * 1024  # a part above this goes to a temporary file
MAX_SIGNATURE_BYTES = 1024 * 1024  # a JWS of a Statement is a few KiB
_HASHES = {56: hashlib.sha224, 64: hashlib.sha256, 96: hashlib.sha384, 128: hashlib.sha512}
_HEX = re.compile(r"^[0-9a-fA-F]+$")

Parse = Callable[[bytes], list[dict[str, Any]]]


def is_multipart_mixed(content_type: str) -> bool:
    return content_type.lower() == "multipart/mixed"


# -- what the Statements declare ----------------------------------------------


def _statement_path(index: int, array: bool) -> str:
    return f"$[{index}]" if array else "$"


def _attachment_refs(statements: list[dict[str, Any]], array: bool) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(json path, attachment)`` for each Attachment, including a SubStatement's."""
    for i, statement in enumerate(statements):
        # The path is written only for a Statement with attachments: most have
        # none, and formatting it for each cost more than the rest of the walk.
        attachments = statement.get("attachments")
        if attachments:
            base = _statement_path(i, array)
            for j, attachment in enumerate(attachments):
                yield f"{base}.attachments[{j}]", attachment
        obj = statement.get("object")
        if isinstance(obj, dict) and obj.get("objectType") == "SubStatement":
            for j, attachment in enumerate(obj.get("attachments") or ()):
                yield f"{_statement_path(i, array)}.object.attachments[{j}]", attachment


def declared_attachments(
    statements: list[dict[str, Any]], *, array: bool
) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """Lowercase sha2 -> the ``(path, attachment)`` pairs that declare it, in order."""
    declared: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for path, attachment in _attachment_refs(statements, array):
        declared.setdefault(attachment["sha2"].lower(), []).append((path, attachment))
    return declared


def check_json_attachments(statements: list[dict[str, Any]], *, array: bool) -> None:
    """An ``application/json`` request carries no attachment data, so every
    Attachment needs a ``fileUrl`` (1.5.2.s2.b1).  A signature must be checked
    against its JWS (Data 2.6.s5.b3), which only a multipart request brings."""
    for path, attachment in _attachment_refs(statements, array):
        if is_signature(attachment):
            raise XapiError(
                400,
                "a signed Statement must be sent as multipart/mixed with its signature as a part",
                path,
            )
        if "fileUrl" not in attachment:
            raise XapiError(
                400,
                "an Attachment without fileUrl needs its data: send the request as multipart/mixed",
                path,
            )


def referenced_attachments(statements: Iterable[dict[str, Any]]) -> dict[str, str]:
    """Lowercase sha2 -> contentType of its first declaration, in order of appearance."""
    found: dict[str, str] = {}
    for path, attachment in _attachment_refs(list(statements), True):
        found.setdefault(attachment["sha2"].lower(), attachment["contentType"])
    return found


# -- received parts -----------------------------------------------------------


class ReceivedPart:
    """The bytes of one attachment part: in memory up to ``spool_bytes``, then in a
    temporary file.  Satisfies :class:`lrs.store.attachments.Blob`."""

    __slots__ = ("sha2", "content_type", "length", "_buffer", "_file", "_spool_bytes", "_dir")

    def __init__(self, sha2: str, content_type: str, *, spool_bytes: int, temp_dir: str | None) -> None:
        self.sha2 = sha2
        self.content_type = content_type
        self.length = 0
        self._buffer = bytearray()
        self._file: BinaryIO | None = None
        self._spool_bytes = spool_bytes
        self._dir = temp_dir

    @property
    def spilled(self) -> bool:
        return self._file is not None

    def write(self, chunk: bytes) -> None:
        self.length += len(chunk)
        if self._file is None and len(self._buffer) + len(chunk) <= self._spool_bytes:
            self._buffer += chunk
            return
        if self._file is None:
            self._file = tempfile.TemporaryFile(prefix="lrs-attachment-", dir=self._dir)
            self._file.write(self._buffer)
            self._buffer = bytearray()
        self._file.write(chunk)

    def content_bytes(self) -> bytes | None:
        """All of the bytes when they are in memory, else None (use :meth:`iter_content`)."""
        return None if self._file is not None else bytes(self._buffer)

    def iter_content(self, chunk_bytes: int = CHUNK_BYTES) -> Iterator[bytes]:
        if self._file is None:
            view = memoryview(self._buffer)
            for start in range(0, len(view), chunk_bytes):
                yield bytes(view[start : start + chunk_bytes])
            return
        self._file.seek(0)
        while chunk := self._file.read(chunk_bytes):
            yield chunk

    def read_at_most(self, limit: int) -> bytes | None:
        """All of the bytes, or None when there are more than ``limit``."""
        if self.length > limit:
            return None
        return b"".join(self.iter_content())

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self._buffer = bytearray()


@dataclass
class StatementUpload:
    statements: list[dict[str, Any]]
    array: bool
    parts: dict[str, ReceivedPart] = field(default_factory=dict)  # by lowercase sha2

    def close(self) -> None:
        for part in self.parts.values():
            part.close()


def _malformed(problem: str, path: str = "$") -> XapiError:
    """A 400 for the body's structure: ``path`` names the (request's or
    part's) header at fault, or ``$`` for the body as a whole."""
    return XapiError(400, f"malformed multipart/mixed body: {problem}", path)


def _too_large(limit: int) -> XapiError:
    return XapiError(413, f"the request body is larger than the limit of {limit} bytes", "$")


async def read_statement_upload(
    request: web.Request, parse: Parse, *, spool_bytes: int = SPOOL_BYTES, temp_dir: str | None = None
) -> StatementUpload:
    """Read a ``multipart/mixed`` Statement request (see the module docstring).

    ``parse`` validates the Statements part; the request's ``client_max_size``
    bounds the whole body.  The caller must ``close()`` the result.
    """
    mimetype = parse_mimetype(request.headers.get("Content-Type", ""))
    if not mimetype.parameters.get("boundary"):
        raise _malformed("the Content-Type header has no boundary parameter", "Content-Type")
    try:
        reader = MultipartReader(request.headers, request.content)
    except (ValueError, AssertionError) as exc:
        raise _malformed(str(exc)) from None
    return await read_upload(
        reader, parse, max_bytes=request.client_max_size, spool_bytes=spool_bytes, temp_dir=temp_dir
    )


async def read_upload(
    reader: MultipartReader,
    parse: Parse,
    *,
    max_bytes: int,
    spool_bytes: int = SPOOL_BYTES,
    temp_dir: str | None = None,
) -> StatementUpload:
    """The body behind ``reader``: Statements validated, parts checked and spooled."""
    budget = _Budget(max_bytes)
    upload: StatementUpload | None = None
    try:
        first = await reader.next()
        if first is None:
            raise _malformed("it has no parts; the first part must hold the Statements")
        body = await _read_statements_part(first, budget)
        statements = parse(body)
        upload = StatementUpload(statements, array=body.lstrip()[:1] == b"[")
        declared = declared_attachments(statements, array=upload.array)
        number = 1
        while (part := await reader.next()) is not None:
            number += 1
            await _read_attachment_part(part, number, declared, upload, budget, spool_bytes, temp_dir)
        _check_every_attachment_has_data(declared, upload.parts)
        _check_signatures(upload)
        return upload
    except (ValueError, HttpProcessingError) as exc:
        if upload is not None:
            upload.close()
        raise _malformed(_explain(exc)) from None
    except BaseException:
        if upload is not None:
            upload.close()
        raise


def _explain(exc: Exception) -> str:
    text = (exc.message if isinstance(exc, HttpProcessingError) else str(exc)) or type(exc).__name__
    if "after EOF" in text or "did not read all the data" in text:
        return "it ends inside a part or before the closing boundary (truncated?)"
    return text


class _Budget:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def take(self, size: int) -> None:
        self.used += size
        if self.used > self.limit:
            raise _too_large(self.limit)


async def _read_statements_part(part: MultipartReader | BodyPartReader, budget: _Budget) -> bytes:
    if not isinstance(part, BodyPartReader):
        raise _malformed("the first part is itself multipart; it must be the application/json Statements", "Content-Type")
    content_type = part.headers.get("Content-Type")
    if content_type is None:
        raise _malformed("the first part has no Content-Type; it must be application/json", "Content-Type")
    mimetype = parse_mimetype(content_type)
    if (mimetype.type, mimetype.subtype) != ("application", "json"):
        raise _malformed(f"the first part must be application/json, got {content_type!r}", "Content-Type")
    body = bytearray()
    while not part.at_eof():
        chunk = await part.read_chunk(CHUNK_BYTES)
        budget.take(len(chunk))
        body += chunk
    return bytes(body)


async def _read_attachment_part(
    part: MultipartReader | BodyPartReader,
    number: int,
    declared: dict[str, list[tuple[str, dict[str, Any]]]],
    upload: StatementUpload,
    budget: _Budget,
    spool_bytes: int,
    temp_dir: str | None,
) -> None:
    where = f"part {number}"
    if not isinstance(part, BodyPartReader):
        raise _malformed(f"{where} is itself multipart; attachment parts hold raw data", "Content-Type")
    raw_hash = part.headers.get(HASH_HEADER)
    if raw_hash is None:
        raise XapiError(400, f"{where} has no {HASH_HEADER} header (Communication 1.5.2.s2.b2.b3)", HASH_HEADER)
    sha2 = raw_hash.strip().lower()
    if len(sha2) not in _HASHES or not _HEX.match(sha2):
        raise XapiError(400, f"{where}: {HASH_HEADER} {raw_hash!r} is not a hex SHA-2 hash", HASH_HEADER)
    if sha2 not in declared:
        raise XapiError(
            400, f"{where}: {HASH_HEADER} {sha2} matches the sha2 of no Attachment in the Statements", HASH_HEADER
        )
    encoding = part.headers.get("Content-Transfer-Encoding")
    if encoding is not None and encoding.strip().lower() != "binary":
        raise XapiError(
            400, f"{where}: Content-Transfer-Encoding must be binary, got {encoding!r} (1.5.2.s2.b2.b4)",
            "Content-Transfer-Encoding",
        )
    content_type = part.headers.get("Content-Type") or declared[sha2][0][1]["contentType"]
    received = ReceivedPart(sha2, content_type, spool_bytes=spool_bytes, temp_dir=temp_dir)
    hasher = _HASHES[len(sha2)]()
    try:
        while not part.at_eof():
            chunk = await part.read_chunk(CHUNK_BYTES)
            budget.take(len(chunk))
            hasher.update(chunk)
            received.write(chunk)
        if hasher.hexdigest() != sha2:
            raise XapiError(
                400, f"{where}: its data does not hash to its {HASH_HEADER} {sha2} (sha2 mismatch)", HASH_HEADER
            )
        # A declared `length` that differs from the bytes received is the
        # sender's mistake, not a reason to refuse: parts are matched by sha2
        # only (1.5.2.s3.b5), and the stored blob records the true length.
    except BaseException:
        received.close()
        raise
    if sha2 in upload.parts:
        received.close()  # the same bytes again: keep one copy
    else:
        upload.parts[sha2] = received


def _check_every_attachment_has_data(
    declared: dict[str, list[tuple[str, dict[str, Any]]]], parts: dict[str, ReceivedPart]
) -> None:
    for sha2, refs in declared.items():
        if sha2 in parts:
            continue
        for path, attachment in refs:
            if "fileUrl" not in attachment:
                raise XapiError(
                    400,
                    f"no part carries the data of this Attachment (sha2 {sha2}) and it has no fileUrl",
                    path,
                )


def _check_signatures(upload: StatementUpload) -> None:
    for i, statement in enumerate(upload.statements):
        base = _statement_path(i, upload.array)
        for j, attachment in enumerate(statement.get("attachments") or ()):
            if not is_signature(attachment):
                continue
            path = f"{base}.attachments[{j}]"
            media = parse_mimetype(attachment["contentType"])
            if f"{media.type}/{media.subtype}" != SIGNATURE_CONTENT_TYPE:
                raise XapiError(
                    400,
                    "malformed signature: a signature Attachment must have contentType "
                    f"{SIGNATURE_CONTENT_TYPE}, got {attachment['contentType']!r}",
                    path,
                )
            part = upload.parts.get(attachment["sha2"].lower())
            if part is None:
                raise XapiError(400, "the signature's JWS must be sent as a part, not only a fileUrl", path)
            jws = part.read_at_most(MAX_SIGNATURE_BYTES)
            if jws is None:
                raise XapiError(400, f"malformed signature: a JWS above {MAX_SIGNATURE_BYTES} bytes", path)
            verify_signed_statement(statement, jws, path=path)


# -- responses ----------------------------------------------------------------


def _part_head(boundary: str, headers: dict[str, str]) -> bytes:
    lines = [f"--{boundary}"] + [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _attachment_headers(sha2: str, content_type: str, length: int) -> dict[str, str]:
    return {
        "Content-Type": content_type,
        "Content-Transfer-Encoding": "binary",
        HASH_HEADER: sha2,
        "Content-Length": str(length),
    }


async def statements_response(
    request: web.Request,
    payload: bytes,
    statements: Iterable[dict[str, Any]],
    *,
    pool: Any,
    tenant: str,
    headers: dict[str, str],
) -> web.StreamResponse:
    """Stream ``payload`` (the Statement or StatementResult JSON) and the stored
    attachments its Statements reference as ``multipart/mixed``."""
    wanted = referenced_attachments(statements)
    stored = await attachment_store.stored_lengths(pool, tenant, list(wanted))
    parts = [(sha2, wanted[sha2], stored[sha2]) for sha2 in wanted if sha2 in stored]
    boundary = uuid.uuid4().hex
    json_head = _part_head(boundary, {"Content-Type": "application/json"})
    heads = [_part_head(boundary, _attachment_headers(*part)) for part in parts]
    closing = f"\r\n--{boundary}--\r\n".encode()
    length = len(json_head) + len(payload) + sum(2 + len(h) + n for h, (_, _, n) in zip(heads, parts)) + len(closing)

    response = web.StreamResponse(status=200, headers=headers)
    response.headers["Content-Type"] = f"multipart/mixed; boundary={boundary}"
    response.content_length = length
    await response.prepare(request)
    await response.write(json_head + payload)
    for head, (sha2, _, size) in zip(heads, parts):
        await response.write(b"\r\n" + head)
        async for chunk in attachment_store.read_content(pool, tenant, sha2, size):
            await response.write(chunk)
    await response.write(closing)
    await response.write_eof()
    return response
