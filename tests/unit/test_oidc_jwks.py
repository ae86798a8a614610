"""The in-memory key set: caching, unknown-kid refetch and its rate limit, failures (a fake fetch and clock)."""

from __future__ import annotations

import json

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from lrs.oidc.claims import BearerError
from lrs.oidc.jwks import JwksUnavailable, KeySet, parse_key_set


def jwk(kid: str, private_key, algorithm: str, **extra) -> dict:
    public = json.loads(jwt.get_algorithm_by_name(algorithm).to_jwk(private_key.public_key()))
    return {**public, "kid": kid, **extra}


RSA_A = jwk("a", rsa.generate_private_key(public_exponent=65537, key_size=2048), "RS256")
RSA_B = jwk("b", rsa.generate_private_key(public_exponent=65537, key_size=2048), "RS256")
EC_C = jwk("c", ec.generate_private_key(ec.SECP256R1()), "ES256")


class Provider:
    def __init__(self, *keys: dict) -> None:
        self.keys = list(keys)
        self.calls = 0
        self.down = False

    async def __call__(self) -> dict:
        self.calls += 1
        if self.down:
            raise OSError("connection refused")
        return {"keys": self.keys}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def key_set(provider: Provider, clock: Clock) -> KeySet:
    return KeySet(provider, cache_s=600, min_refetch_s=30, source="test", clock=clock)


def test_parse_key_set_keeps_only_signing_keys():
    keys = parse_key_set({"keys": [RSA_A, {**EC_C, "use": "enc"}, {"kty": "oct", "k": "c2VjcmV0", "kid": "h"},
                                   {"kty": "nonsense"}, "not a key"]})
    assert list(keys) == ["a"]
    with pytest.raises(JwksUnavailable):
        parse_key_set({"no": "keys"})


async def test_cached_until_stale_then_fetched_again():
    provider, clock = Provider(RSA_A), Clock()
    keys = key_set(provider, clock)
    assert (await keys.key_for("a", "RS256")).key_id == "a"
    clock.now += 599
    await keys.key_for("a", "RS256")
    assert provider.calls == 1
    clock.now += 2
    await keys.key_for("a", "RS256")
    assert provider.calls == 2


async def test_unknown_kid_refetches_at_most_once_per_interval():
    provider, clock = Provider(RSA_A), Clock()
    keys = key_set(provider, clock)
    await keys.key_for("a", "RS256")
    provider.keys = [RSA_A, RSA_B]  # rotation
    assert (await keys.key_for("b", "RS256")).key_id == "b"
    assert provider.calls == 2
    for _ in range(10):
        with pytest.raises(BearerError, match="'zzz' is not among"):
            await keys.key_for("zzz", "RS256")
    assert provider.calls == 2  # the refetch for "b" used this interval's one
    clock.now += 31
    with pytest.raises(BearerError):
        await keys.key_for("zzz", "RS256")
    assert provider.calls == 3


async def test_key_must_be_for_the_token_algorithm():
    keys = key_set(Provider(RSA_A, EC_C), Clock())
    with pytest.raises(BearerError, match="is for RS256"):
        await keys.key_for("a", "ES256")
    with pytest.raises(BearerError, match="names no key"):
        await keys.key_for(None, "RS256")
    single = key_set(Provider(EC_C), Clock())
    assert (await single.key_for(None, "ES256")).key_id == "c"


async def test_failures_keep_known_keys_and_never_hammer_the_provider():
    provider, clock = Provider(RSA_A), Clock()
    keys = key_set(provider, clock)
    await keys.key_for("a", "RS256")
    provider.down = True
    clock.now += 601
    assert (await keys.key_for("a", "RS256")).key_id == "a"  # stale but kept
    calls = provider.calls
    await keys.key_for("a", "RS256")
    assert provider.calls == calls  # no retry within min_refetch_s

    empty = key_set(Provider(), clock)
    empty._fetch.down = True  # type: ignore[attr-defined]
    with pytest.raises(JwksUnavailable, match="could not be read"):
        await empty.key_for("a", "RS256")
    with pytest.raises(JwksUnavailable, match="retry later"):
        await empty.key_for("a", "RS256")
    assert empty._fetch.calls == 1  # type: ignore[attr-defined]
