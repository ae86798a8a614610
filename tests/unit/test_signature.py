"""Signed Statements (Data 2.6): lrs.xapi.signature with keys made in the test."""

from __future__ import annotations

import base64
import copy
import datetime as dt
import hashlib
import hmac
import json

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from lrs.xapi.errors import XapiError
from lrs.xapi.signature import signature_attachments, verify_signed_statement

HASHES = {"RS256": hashes.SHA256, "RS384": hashes.SHA384, "RS512": hashes.SHA512}
SIGNATURE_USAGE = "http://adlnet.gov/expapi/attachments/signature"


def b64url(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def certificate_for(key) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "lrs test signer")])
    now = dt.datetime.now(dt.timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )


@pytest.fixture(scope="module")
def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def other_rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def x5c_of(key) -> list[str]:
    der = certificate_for(key).public_bytes(serialization.Encoding.DER)
    return [base64.b64encode(der).decode()]


def sign(payload: dict | bytes, key, *, alg: str = "RS256", header: dict | None = None, x5c_key=None) -> bytes:
    head = {"alg": alg} if header is None else header
    if x5c_key is not None:
        head["x5c"] = x5c_of(x5c_key)
    header_b64 = b64url(json.dumps(head).encode())
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    payload_b64 = b64url(body)
    signing_input = header_b64 + b"." + payload_b64
    if alg.startswith("RS"):
        signature = key.sign(signing_input, padding.PKCS1v15(), HASHES[alg]())
    elif alg == "HS256":
        signature = hmac.new(b"shared-secret", signing_input, hashlib.sha256).digest()
    elif alg == "ES256":
        signature = key.sign(signing_input, ec.ECDSA(hashes.SHA256()))
    else:  # "none"
        signature = b"x"
    return signing_input + b"." + b64url(signature)


def base_statement() -> dict:
    return {
        "id": "6690e6c9-3ef0-4ed3-8b37-7f3964730bee",
        "actor": {"objectType": "Agent", "name": "Ann", "mbox": "mailto:ann@example.org"},
        "verb": {"id": "http://adlnet.gov/expapi/verbs/completed", "display": {"en-US": "completed"}},
        "object": {"objectType": "Activity", "id": "http://example.org/courses/unit-1"},
        "timestamp": "2024-05-01T10:00:00.123Z",
    }


def signed(statement: dict, jws: bytes) -> dict:
    """``statement`` as sent with the signature attachment added."""
    result = copy.deepcopy(statement)
    result.setdefault("attachments", []).append(
        {
            "usageType": SIGNATURE_USAGE,
            "display": {"en-US": "Signature"},
            "contentType": "application/octet-stream",
            "length": len(jws),
            "sha2": hashlib.sha256(jws).hexdigest(),
        }
    )
    return result


@pytest.mark.parametrize("alg", ["RS256", "RS384", "RS512"])
def test_rsa_algorithms_with_x5c_certificate_verify(rsa_key, alg):
    original = base_statement()
    jws = sign(original, rsa_key, alg=alg, x5c_key=rsa_key)
    verify_signed_statement(signed(original, jws), jws)


def test_without_x5c_the_payload_is_still_compared(rsa_key):
    original = base_statement()
    jws = sign(original, rsa_key)
    verify_signed_statement(signed(original, jws), jws)
    tampered = signed(original, jws)
    tampered["verb"]["id"] = "http://adlnet.gov/expapi/verbs/failed"
    with pytest.raises(XapiError, match="does not match"):
        verify_signed_statement(tampered, jws)


def test_signature_from_another_key_than_the_certificate_is_rejected(rsa_key, other_rsa_key):
    original = base_statement()
    jws = sign(original, other_rsa_key, x5c_key=rsa_key)
    with pytest.raises(XapiError, match="does not verify") as info:
        verify_signed_statement(signed(original, jws), jws, path="$.attachments[0]")
    assert info.value.status == 400 and info.value.path == "$.attachments[0]"


def test_flipped_signature_byte_is_rejected(rsa_key):
    original = base_statement()
    jws = sign(original, rsa_key, x5c_key=rsa_key)
    head, payload, sig = jws.split(b".")
    raw = bytearray(base64.urlsafe_b64decode(sig + b"=" * (-len(sig) % 4)))
    raw[10] ^= 0x01
    bad = head + b"." + payload + b"." + b64url(bytes(raw))
    with pytest.raises(XapiError, match="does not verify"):
        verify_signed_statement(signed(original, bad), bad)


@pytest.mark.parametrize("alg", ["HS256", "none", "ES256", "PS256"])
def test_other_algorithms_are_rejected(rsa_key, alg):
    original = base_statement()
    key = ec.generate_private_key(ec.SECP256R1()) if alg == "ES256" else rsa_key
    if alg == "PS256":
        jws = sign(original, rsa_key, header={"alg": "PS256"}, alg="RS256")  # header says PS256
    else:
        jws = sign(original, key, alg=alg)
    with pytest.raises(XapiError, match="not allowed") as info:
        verify_signed_statement(signed(original, jws), jws)
    assert info.value.status == 400


def test_missing_algorithm_is_rejected(rsa_key):
    original = base_statement()
    jws = sign(original, rsa_key, header={"typ": "JWT"})
    with pytest.raises(XapiError, match="not allowed"):
        verify_signed_statement(signed(original, jws), jws)


@pytest.mark.parametrize(
    "change",
    [
        lambda s: s["actor"].update(mbox="mailto:bob@example.org"),
        lambda s: s["object"].update(id="http://example.org/courses/unit-2"),
        lambda s: s.update(result={"success": True}),
        lambda s: s.update(id="0f6c9d4c-6d4b-4b1b-9a8e-3a1f0a2b9c11"),
        lambda s: s.update(timestamp="2024-05-01T10:00:01.123Z"),
    ],
    ids=["actor", "object", "added result", "other id", "other timestamp"],
)
def test_payload_that_differs_from_the_statement_is_rejected(rsa_key, change):
    original = base_statement()
    jws = sign(original, rsa_key, x5c_key=rsa_key)
    received = signed(original, jws)
    change(received)
    with pytest.raises(XapiError, match="does not match"):
        verify_signed_statement(received, jws)


def test_differences_an_lrs_may_cause_are_ignored(rsa_key):
    original = base_statement()
    del original["id"]
    jws = sign(original, rsa_key, x5c_key=rsa_key)
    received = signed(original, jws)
    received["id"] = "0f6c9d4c-6d4b-4b1b-9a8e-3a1f0a2b9c11"  # payload had none
    received["timestamp"] = "2024-05-01T12:00:00.123+02:00"  # same instant
    received["authority"] = {"objectType": "Agent", "account": {"homePage": "http://lrs", "name": "k"}}
    received["actor"]["mbox"] = "mailto:ann@EXAMPLE.org"  # mbox domain is case-insensitive
    received["verb"]["display"] = {"fr": "terminé"}
    verify_signed_statement(received, jws)


def test_other_attachments_are_part_of_the_signed_statement(rsa_key):
    original = base_statement()
    original["attachments"] = [
        {
            "usageType": "http://example.org/usage/essay",
            "display": {"en": "Essay"},
            "contentType": "text/plain",
            "length": 5,
            "sha2": hashlib.sha256(b"essay").hexdigest(),
        }
    ]
    jws = sign(original, rsa_key, x5c_key=rsa_key)
    received = signed(original, jws)
    assert [i for i, _ in signature_attachments(received)] == [1]
    verify_signed_statement(received, jws)
    dropped = copy.deepcopy(received)
    del dropped["attachments"][0]
    with pytest.raises(XapiError, match="does not match"):
        verify_signed_statement(dropped, jws)


@pytest.mark.parametrize(
    "jws",
    [
        b"",
        b"not a jws",
        b"a.b",
        b"a.b.c.d",
        b"..",
        b"eyJhbGciOiJSUzI1NiJ9..c2ln",
        b"e30.e30.***",
        b"\xff\xfe.e30.c2ln",
        b64url(b"not json") + b"." + b64url(b"{}") + b".c2ln",
        b64url(b"[1]") + b"." + b64url(b"{}") + b".c2ln",
        b64url(b'{"alg":"RS256"}') + b"." + b64url(b"not json") + b".c2ln",
        b64url(b'{"alg":"RS256"}') + b"." + b64url(b"[]") + b".c2ln",
        b64url(b'{"alg":"RS256","crit":["b64"],"b64":false}') + b"." + b64url(b"{}") + b".c2ln",
        b64url(b'{"alg":"RS256","x5c":"MIIB"}') + b"." + b64url(b"{}") + b".c2ln",
        b64url(b'{"alg":"RS256","x5c":["bm90IGEgY2VydA=="]}') + b"." + b64url(b"{}") + b".c2ln",
        b64url(b'{"alg":"RS256","x5c":["%%%"]}') + b"." + b64url(b"{}") + b".c2ln",
        b'{"payload":"e30","signatures":[]}',
    ],
)
def test_malformed_signatures_are_400(jws):
    with pytest.raises(XapiError) as info:
        verify_signed_statement(signed(base_statement(), jws), jws)
    assert info.value.status == 400
    assert "signature" in info.value.message


def test_certificate_with_a_non_rsa_key_is_rejected(rsa_key):
    ec_key = ec.generate_private_key(ec.SECP256R1())
    original = base_statement()
    jws = sign(original, rsa_key, header={"alg": "RS256", "x5c": x5c_of(ec_key)})
    with pytest.raises(XapiError, match="RSA key"):
        verify_signed_statement(signed(original, jws), jws)


def test_trailing_newline_around_the_jws_is_tolerated(rsa_key):
    original = base_statement()
    jws = sign(original, rsa_key, x5c_key=rsa_key) + b"\r\n"
    verify_signed_statement(signed(original, jws), jws)
