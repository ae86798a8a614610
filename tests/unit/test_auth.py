"""Credential hashing, Basic auth parsing, scopes and the verified cache (pure)."""

from __future__ import annotations

import base64
import hashlib

import pytest

from lrs.auth import (
    AuthError,
    Credential,
    VerifiedCache,
    hash_secret,
    parse_basic_auth,
    validate_scopes,
    validate_tenant,
    verify_secret,
)


def test_hash_round_trip_and_salting():
    first, second = hash_secret("s3cret"), hash_secret("s3cret")
    assert first != second  # salted
    assert "s3cret" not in first
    assert verify_secret("s3cret", first) and verify_secret("s3cret", second)
    assert not verify_secret("s3cret!", first)


def test_unknown_key_never_verifies():
    assert verify_secret("anything", None) is False


def test_malformed_hash_is_a_failure_not_an_exception():
    assert verify_secret("x", "scrypt$bad") is False
    assert verify_secret("x", "bcrypt$1$2$3$AAAA$AAAA") is False


@pytest.mark.parametrize(
    "header",
    [None, "", "Bearer abc", "Basic", "Basic !!!", "Basic " + base64.b64encode(b"nocolon").decode(),
     "Basic " + base64.b64encode(b":secret").decode()],
)
def test_bad_authorization_headers(header):
    with pytest.raises(AuthError):
        parse_basic_auth(header)


def test_basic_auth_parsing_keeps_colons_in_secret():
    header = "Basic " + base64.b64encode(b"key:se:cret").decode()
    assert parse_basic_auth(header) == ("key", "se:cret")


def test_scope_implications_follow_the_spec_table():
    everything = Credential("k", "t", frozenset({"all"}))
    reader = Credential("k", "t", frozenset({"all/read"}))
    writer = Credential("k", "t", frozenset({"statements/write"}))
    assert everything.allows("statements/write") and everything.allows("state")
    assert reader.allows("statements/read") and not reader.allows("statements/write")
    assert writer.allows("statements/write") and not writer.allows("statements/read")


def test_scope_and_tenant_validation():
    assert validate_scopes(["all"]) == frozenset({"all"})
    with pytest.raises(ValueError, match="unknown scope"):
        validate_scopes(["everything"])
    with pytest.raises(ValueError):
        validate_scopes([])
    assert validate_tenant("agency-7_a") == "agency-7_a"
    for bad in ("", "a.b", "a b", "ü", "x" * 65, "a>"):
        with pytest.raises(ValueError):
            validate_tenant(bad)


def test_verified_cache_matches_only_the_same_secret_and_expires():
    now = [0.0]
    cache = VerifiedCache(ttl=10, clock=lambda: now[0])
    credential = Credential("key", "default", frozenset({"all"}))
    assert cache.lookup("key", "secret") is None
    cache.remember("key", "secret", credential)
    assert cache.lookup("key", "secret") is credential
    assert cache.lookup("key", "wrong") is None
    now[0] = 10.0
    assert cache.lookup("key", "secret") is None


def test_hash_secret_costs_scrypt_n_2_14_and_the_check_uses_the_stored_cost():
    scheme, n, r, p, _, _ = hash_secret("s3cret").split("$")
    assert (scheme, n, r, p) == ("scrypt", str(2**14), "8", "1")
    # A hash made at another cost (the tests' light_secret_hashing) is checked at that cost.
    salt, digest = b"0" * 16, hashlib.scrypt(b"s3cret", salt=b"0" * 16, n=2**4, r=8, p=1, dklen=32)
    light = "$".join(["scrypt", "16", "8", "1", base64.b64encode(salt).decode(), base64.b64encode(digest).decode()])
    assert verify_secret("s3cret", light) and not verify_secret("s3cret!", light)
