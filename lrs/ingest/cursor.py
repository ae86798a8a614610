"""Opaque ``more`` cursors for GET /statements paging.

The spec lets the LRS put everything needed to continue a query into the
``more`` IRL (xAPI-Data 2.5 s3 b2), which must stay usable for 24 hours; a
stateless signed token does that without storing anything. The token is
bound to the credential key and tenant that made the first request, so a
cursor cannot be replayed by another credential to read someone else's
results.

Layout (url-safe base64 without padding)::

    msgpack([version, owner, after_position, query]) || tag

- ``owner`` = HMAC-SHA256(secret, "lrs-cursor-owner" | credential key | tenant)[:16]
- ``tag``   = HMAC-SHA256(secret, "lrs-cursor" | payload), 32 bytes

A token that does not decode or whose tag does not verify (tampered,
truncated, another server's secret) is a 400. A well-formed token whose
owner is another credential or tenant is a 404, as if the page did not exist.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

import msgspec

from lrs.ingest.query import StatementQuery
from lrs.xapi.errors import NotFoundError, XapiError

__all__ = ["decode_cursor", "encode_cursor"]

_VERSION = 1
_TAG_SIZE = 32
_OWNER_SIZE = 16
_TAG_DOMAIN = b"lrs-cursor\x00"
_OWNER_DOMAIN = b"lrs-cursor-owner\x00"


class _Cursor(msgspec.Struct, array_like=True, frozen=True):
    version: int
    owner: bytes
    after_position: int
    query: StatementQuery


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(_Cursor)


def encode_cursor(
    secret: bytes, credential_key: str, tenant: str, query: StatementQuery, after_position: int
) -> str:
    """A ``more`` token continuing ``query`` after log position ``after_position``."""
    owner = _owner(secret, credential_key, tenant)
    payload = _encoder.encode(_Cursor(_VERSION, owner, after_position, query))
    tag = hmac.new(secret, _TAG_DOMAIN + payload, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(payload + tag).rstrip(b"=").decode("ascii")


def decode_cursor(
    secret: bytes, credential_key: str, tenant: str, token: str
) -> tuple[StatementQuery, int]:
    """The query and position inside ``token``; 400 if malformed, 404 if not the caller's."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        raise XapiError(400, "more: not a valid cursor", "more") from None
    if len(raw) <= _TAG_SIZE:
        raise XapiError(400, "more: not a valid cursor", "more")
    payload, tag = raw[:-_TAG_SIZE], raw[-_TAG_SIZE:]
    expected = hmac.new(secret, _TAG_DOMAIN + payload, hashlib.sha256).digest()
    if not hmac.compare_digest(tag, expected):
        raise XapiError(400, "more: cursor was altered or not issued by this LRS", "more")
    try:
        cursor = _decoder.decode(payload)
    except msgspec.DecodeError:
        raise XapiError(400, "more: not a valid cursor", "more") from None
    if cursor.version != _VERSION:
        raise XapiError(400, "more: cursor from an unsupported version", "more")
    if not hmac.compare_digest(cursor.owner, _owner(secret, credential_key, tenant)):
        raise NotFoundError(404, "more: no such page for these credentials", "more")
    return cursor.query, cursor.after_position


def _owner(secret: bytes, credential_key: str, tenant: str) -> bytes:
    message = bytearray(_OWNER_DOMAIN)
    for part in (credential_key, tenant):
        encoded = part.encode("utf-8")
        message += len(encoded).to_bytes(4, "big") + encoded
    return hmac.new(secret, bytes(message), hashlib.sha256).digest()[:_OWNER_SIZE]
