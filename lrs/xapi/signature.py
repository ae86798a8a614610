"""Signed Statements (xAPI-Data 2.6): checking a JWS signature attachment.

A signed Statement carries a JSON Web Signature as an Attachment with usageType
``http://adlnet.gov/expapi/attachments/signature`` and contentType
``application/octet-stream`` (2.6.s4.b1).  The LRS MUST reject malformed
signatures with 400 (2.6.s5.b1) and, to tell, MUST (2.6.s5.b3):

1. decode the JWS and load the signed Statement from its payload;
2. check that it is logically equivalent to the received Statement;
3. if the JWS header includes an X.509 certificate (``x5c``), validate the
   signature against that certificate;
4. check the signature requirements: algorithm RS256, RS384 or RS512
   (2.6.s4.b4), payload a JSON serialisation of the Statement (2.6.s4.b3).

Decisions where the spec leaves room, and why:

- Only JWS Compact Serialization is read (2.6.s4.b2: SHOULD*, and the JSON
  serialisation "will be forbidden in a future version").  Anything else is a
  malformed signature.
- No ``x5c`` header: the signature bytes cannot be checked, so the LRS checks
  everything else (form, algorithm, payload equivalence) and accepts.  The
  spec only requires validation against a certificate the header includes,
  and its note says that step catches mistakes, it is not a security measure;
  clients MUST NOT assume a signature is valid because an LRS accepted it
  (2.6.s6.b2).  Keys are never fetched (``x5u``, ``jku``).
- With ``x5c``, the signature is verified with the public key of the first
  certificate (the signer's, RFC 7515 4.1.6).  The chain, validity dates and
  revocation are not checked: trust in the signer is outside the spec's scope.
- A ``crit`` header names extensions this LRS does not implement, so it is
  rejected (RFC 7515 4.1.11).
- The comparison is :func:`lrs.xapi.equivalence.statements_equivalent` after
  removing signature attachments from both sides (the payload is the
  Statement "before the signature was added"; an ``attachments`` list left
  empty is dropped).  That comparison ignores ``id``, ``timestamp``,
  ``authority``, ``stored`` and ``version`` because an LRS may assign them;
  an LRS cannot change an ``id`` or ``timestamp`` the client sent, so when
  both sides carry one they must agree (the timestamp as a point in time to
  the millisecond).

The module is pure: bytes and dicts in, ``XapiError(400)`` out.  The JWS is
decoded and verified by PyJWT (``jwt.PyJWS``); ``cryptography`` reads the
``x5c`` certificate.  Both are computation only.
"""

from __future__ import annotations

import base64
import binascii
import copy
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import jwt
import msgspec
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from lrs.xapi.attachments import SIGNATURE_USAGE_TYPE
from lrs.xapi.equivalence import statements_equivalent
from lrs.xapi.errors import XapiError

__all__ = [
    "ALGORITHMS",
    "SIGNATURE_CONTENT_TYPE",
    "is_signature",
    "signature_attachments",
    "verify_signed_statement",
]

SIGNATURE_CONTENT_TYPE = "application/octet-stream"
ALGORITHMS = ("RS256", "RS384", "RS512")  # 2.6.s4.b4

# PyJWT's JWS: decoding (strict base64url, the header a JSON object) and RSA
# PKCS#1 v1.5 verification, for these algorithms only.
_JWS = jwt.PyJWS(algorithms=list(ALGORITHMS))
_decode_json = msgspec.json.Decoder().decode


def is_signature(attachment: dict[str, Any]) -> bool:
    return attachment.get("usageType") == SIGNATURE_USAGE_TYPE


def signature_attachments(statement: dict[str, Any]) -> list[tuple[int, dict[str, Any]]]:
    """``(index, attachment)`` for each signature attachment of ``statement``."""
    return [(i, a) for i, a in enumerate(statement.get("attachments") or ()) if is_signature(a)]


def verify_signed_statement(statement: dict[str, Any], jws: bytes, *, path: str = "$") -> None:
    """Raise ``XapiError(400)`` unless ``jws`` is a well-formed signature of ``statement``.

    ``statement`` is the received Statement as sent (before the LRS assigns
    anything); ``jws`` the bytes of its signature attachment; ``path`` the JSON
    path of that attachment, used in messages.
    """
    token = jws.strip()
    segments = token.split(b".")
    if len(segments) != 3:
        raise XapiError(
            400,
            "malformed signature: expected a JWS in Compact Serialization (header.payload.signature)",
            path,
        )
    if not all(segments):
        raise XapiError(400, "malformed signature: a JWS segment is empty", path)
    try:
        # Reads all three segments (strict base64url) and the header (a JSON
        # object); nothing is verified yet.
        decoded = _JWS.decode_complete(token, options={"verify_signature": False})
    except jwt.DecodeError as exc:
        raise XapiError(400, f"malformed signature: the JWS cannot be decoded ({exc})", path) from None
    header = decoded["header"]
    algorithm = header.get("alg")
    if algorithm not in ALGORITHMS:
        raise XapiError(
            400,
            f"signature algorithm {algorithm!r} is not allowed; use RS256, RS384 or RS512",
            path,
        )
    if "crit" in header:
        raise XapiError(400, "malformed signature: JWS 'crit' extensions are not supported", path)
    try:
        payload = _decode_json(decoded["payload"])
    except (msgspec.DecodeError, UnicodeDecodeError):
        raise XapiError(400, "malformed signature: the JWS payload is not valid JSON", path) from None
    if not isinstance(payload, dict):
        raise XapiError(400, "malformed signature: the JWS payload is not a Statement object", path)
    if "x5c" in header:
        public_key = _certificate_key(header["x5c"], path)
        try:
            _JWS.decode_complete(token, key=public_key, algorithms=[algorithm])
        except jwt.InvalidSignatureError:
            raise XapiError(
                400, "the signature does not verify against the certificate in the JWS x5c header", path
            ) from None
    if not _same_statement(payload, statement):
        raise XapiError(
            400, "the signed payload does not match the Statement (Data 2.6.s5.b3.b2)", path
        )


# -- decoding -------------------------------------------------------------------


def _certificate_key(x5c: Any, path: str) -> rsa.RSAPublicKey:
    if not isinstance(x5c, list) or not x5c or not all(isinstance(c, str) for c in x5c):
        raise XapiError(400, "malformed signature: x5c must be a non-empty array of certificates", path)
    try:
        # x5c holds standard base64 (not base64url) DER (RFC 7515 4.1.6).
        der = base64.b64decode(x5c[0], validate=True)
        certificate = x509.load_der_x509_certificate(der)
        public_key = certificate.public_key()
    except (binascii.Error, ValueError):
        raise XapiError(400, "malformed signature: the x5c certificate cannot be read", path) from None
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise XapiError(400, "malformed signature: the x5c certificate does not hold an RSA key", path)
    return public_key


# -- comparison -----------------------------------------------------------------


def _same_statement(signed: dict[str, Any], received: dict[str, Any]) -> bool:
    signed, received = _unsigned(signed), _unsigned(received)
    if not statements_equivalent(signed, received):
        return False
    if "id" in signed and "id" in received and not _same_uuid(signed["id"], received["id"]):
        return False
    if "timestamp" in signed and "timestamp" in received:
        return _instant(signed["timestamp"]) == _instant(received["timestamp"])
    return True


def _unsigned(statement: dict[str, Any]) -> dict[str, Any]:
    """The Statement without its signature attachments (and without an emptied list)."""
    attachments = statement.get("attachments")
    if not isinstance(attachments, list):
        return statement
    kept = [a for a in attachments if not (isinstance(a, dict) and is_signature(a))]
    result = copy.copy(statement)
    if kept:
        result["attachments"] = kept
    else:
        del result["attachments"]
    return result


def _same_uuid(a: Any, b: Any) -> bool:
    try:
        return uuid.UUID(str(a)) == uuid.UUID(str(b))
    except ValueError:
        return a == b


def _instant(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    moment = moment.astimezone(timezone.utc)
    return moment - timedelta(microseconds=moment.microsecond % 1000)
