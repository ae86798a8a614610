"""OIDC bearer tokens end to end: the LRS against real PostgreSQL, the issuer's JWKS served by a local
aiohttp server (or read from a file). The tests make their own RSA, EC P-256 and Ed25519 keys and tokens."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable

import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from lrs.config import Settings
from lrs.oidc_settings import OidcSettings
from lrs.service import create_app
from tests.e2e.conftest import KEY, SECRET
from tests.e2e.statements import statement

ISSUER = "https://id.example.gov/realms/digital-literacy"
AUDIENCE = "lrs"
STATEMENTS = "/xapi/statements"


class Signer:
    """A private key, its public JWK and the JWS algorithm it signs with."""

    def __init__(self, kid: str, algorithm: str, private_key: Any) -> None:
        self.kid, self.algorithm, self.private_key = kid, algorithm, private_key
        self.public_key = private_key.public_key()
        self.jwk = {**json.loads(jwt.get_algorithm_by_name(algorithm).to_jwk(self.public_key)),
                    "kid": kid, "use": "sig", "alg": algorithm}

    def token(self, **claims: Any) -> str:
        now = int(time.time())
        payload = {"iss": ISSUER, "aud": AUDIENCE, "sub": "user-1", "azp": "mooc-platform", "tenant": "default",
                   "scope": "openid profile xapi:all", "iat": now, "exp": now + 300, **claims}
        payload = {k: v for k, v in payload.items() if v is not None}
        return jwt.encode(payload, self.private_key, algorithm=self.algorithm, headers={"kid": self.kid})

    def public_pem(self) -> bytes:
        return self.public_key.public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)


RSA = Signer("rsa-1", "RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048))
EC = Signer("ec-1", "ES256", ec.generate_private_key(ec.SECP256R1()))
ED = Signer("ed-1", "EdDSA", ed25519.Ed25519PrivateKey.generate())
ROTATED = Signer("rsa-2", "RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048))


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned_token(header: dict[str, Any], claims: dict[str, Any], signature: Callable[[bytes], bytes]) -> str:
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    return f"{signing_input}.{b64(signature(signing_input.encode()))}"


def claims_of(**changes: Any) -> dict[str, Any]:
    return jwt.decode(RSA.token(**changes), options={"verify_signature": False})


class Issuer:
    """The identity provider's JWKS endpoint; its key list can be rotated and its fetches are counted."""

    def __init__(self, signers: list[Signer]) -> None:
        self.signers = signers
        self.fetches = 0

    async def jwks(self, _request: web.Request) -> web.Response:
        self.fetches += 1
        return web.json_response({"keys": [s.jwk for s in self.signers]})


@pytest.fixture
async def issuer() -> AsyncIterator[tuple[Issuer, str]]:
    provider = Issuer([RSA, EC, ED])
    app = web.Application()
    app.router.add_get("/certs", provider.jwks)
    async with TestServer(app) as server:
        yield provider, str(server.make_url("/certs"))


MakeClient = Callable[..., Awaitable[TestClient]]


@pytest.fixture
async def make_client(database_url: str, tmp_path: Path) -> AsyncIterator[MakeClient]:
    opened: list[TestClient] = []

    async def make(**oidc: Any) -> TestClient:
        settings = Settings(
            database_url=database_url, nats_url=None, relay_enabled=False, frameworks_dir=tmp_path / "fw",
            bootstrap_credential=f"{KEY}:{SECRET}",
            oidc=OidcSettings(issuer=ISSUER, audiences=(AUDIENCE,), **oidc),
        )
        client = TestClient(TestServer(create_app(settings, database_url=database_url, nats_url=None)))
        await client.start_server()
        opened.append(client)
        return client

    yield make
    for client in opened:
        await client.close()


@pytest.fixture
async def client(make_client: MakeClient, issuer) -> TestClient:
    return await make_client(jwks_url=issuer[1])


def bearer(token: str, version: str = "1.0.3") -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "X-Experience-API-Version": version}


async def stored_count(client: TestClient) -> int:
    basic = await client.get(STATEMENTS, headers={"Authorization": "Basic " + b64(f"{KEY}:{SECRET}".encode()),
                                                  "X-Experience-API-Version": "1.0.3"})
    return len((await basic.json())["statements"])


async def refused(client: TestClient, token: str, fragment: str) -> None:
    before = await stored_count(client)
    response = await client.post(STATEMENTS, json=statement(), headers=bearer(token))
    body = await response.json()
    assert response.status == 401, body
    assert fragment in body["error"], body
    assert response.headers["WWW-Authenticate"].startswith("Bearer ")
    assert await stored_count(client) == before  # nothing stored


# -- accepted ---------------------------------------------------------------------------


@pytest.mark.parametrize("signer", [RSA, EC, ED], ids=["RS256", "ES256", "EdDSA"])
async def test_a_valid_token_authenticates_and_its_client_and_subject_are_the_authority(client, signer):
    response = await client.post(STATEMENTS, json=statement(), headers=bearer(signer.token()))
    assert response.status == 200, await response.text()
    [statement_id] = await response.json()
    got = await client.get(STATEMENTS, params={"statementId": statement_id}, headers=bearer(signer.token()))
    assert got.status == 200
    assert (await got.json())["authority"] == {"objectType": "Group", "member": [
        {"objectType": "Agent", "account": {"homePage": ISSUER, "name": "mooc-platform"}},
        {"objectType": "Agent", "account": {"homePage": ISSUER, "name": "user-1"}},
    ]}


async def test_a_token_without_a_client_makes_the_subject_the_whole_authority(client):
    response = await client.post(STATEMENTS, json=statement(), headers=bearer(RSA.token(azp=None)))
    [statement_id] = await response.json()
    got = await client.get(STATEMENTS, params={"statementId": statement_id}, headers=bearer(RSA.token()))
    assert (await got.json())["authority"] == {"objectType": "Agent", "account": {"homePage": ISSUER,
                                                                                  "name": "user-1"}}


async def test_basic_authentication_still_works_beside_bearer_tokens(client):
    basic = {"Authorization": "Basic " + b64(f"{KEY}:{SECRET}".encode()), "X-Experience-API-Version": "1.0.3"}
    assert (await client.post(STATEMENTS, json=statement(), headers=basic)).status == 200


async def test_expiry_has_a_small_leeway(client):
    now = int(time.time())
    response = await client.post(STATEMENTS, json=statement(), headers=bearer(RSA.token(exp=now - 10)))
    assert response.status == 200, await response.text()  # within the default 30 s


async def test_tenant_and_scopes_come_from_the_claims(client):
    writer = RSA.token(scope="openid xapi:statements/write", tenant="hue")
    assert (await client.post(STATEMENTS, json=statement(), headers=bearer(writer))).status == 200
    forbidden = await client.get(STATEMENTS, headers=bearer(writer))
    assert forbidden.status == 403 and "oidc:user-1" in (await forbidden.json())["error"]
    hue = await client.get(STATEMENTS, headers=bearer(RSA.token(tenant="hue", scope="xapi:statements/read")))
    assert len((await hue.json())["statements"]) == 1
    default = await client.get(STATEMENTS, headers=bearer(RSA.token(scope="xapi:all")))
    assert (await default.json())["statements"] == []  # tenants are apart
    no_xapi_scope = await client.post(STATEMENTS, json=statement(), headers=bearer(RSA.token(scope="openid profile")))
    assert no_xapi_scope.status == 403


async def test_read_mine_sees_what_this_client_and_user_sent(client):
    mine = RSA.token(scope="xapi:statements/write xapi:statements/read/mine")
    [own] = await (await client.post(STATEMENTS, json=statement(), headers=bearer(mine))).json()
    other_user = RSA.token(sub="user-2")
    await client.post(STATEMENTS, json=statement(), headers=bearer(other_user))
    seen = await client.get(STATEMENTS, headers=bearer(mine))
    assert [s["id"] for s in (await seen.json())["statements"]] == [own]


# -- refused: 401 with a message that says why ------------------------------------------------


async def test_an_expired_token_is_refused(client):
    now = int(time.time())
    await refused(client, RSA.token(iat=now - 600, exp=now - 120), "expired")


async def test_a_token_for_another_audience_is_refused(client):
    await refused(client, RSA.token(aud="another-service"), "audience")


async def test_a_token_from_another_issuer_is_refused(client):
    await refused(client, RSA.token(iss="https://evil.example/realms/x"), "not issued by")


async def test_a_token_without_expiry_is_refused(client):
    await refused(client, RSA.token(exp=None), "'exp'")


async def test_an_unsigned_alg_none_token_is_refused(client):
    token = unsigned_token({"alg": "none", "typ": "JWT", "kid": RSA.kid}, claims_of(), lambda _: b"")
    await refused(client, token, "'none' is not accepted")


async def test_hs256_signed_with_the_public_key_is_refused(client):
    """Key confusion: an attacker who knows the issuer's public key signs HS256 with it as the secret."""
    secret = RSA.public_pem()
    token = unsigned_token({"alg": "HS256", "typ": "JWT", "kid": RSA.kid}, claims_of(),
                           lambda data: hmac.new(secret, data, hashlib.sha256).digest())
    await refused(client, token, "'HS256' is not accepted")
    jwk_secret = json.dumps(RSA.jwk).encode()
    token = unsigned_token({"alg": "HS256", "kid": RSA.kid}, claims_of(),
                           lambda data: hmac.new(jwk_secret, data, hashlib.sha256).digest())
    await refused(client, token, "not accepted")


async def test_a_token_whose_algorithm_does_not_match_its_key_is_refused(client):
    token = jwt.encode(claims_of(), EC.private_key, algorithm="ES256", headers={"kid": RSA.kid})
    await refused(client, token, "is for RS256")


async def test_a_forged_signature_is_refused(client):
    forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode(claims_of(), forger, algorithm="RS256", headers={"kid": RSA.kid})
    await refused(client, token, "signature does not verify")


async def test_an_unknown_key_id_is_refused(client):
    stranger = Signer("nobody-knows", "RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048))
    await refused(client, stranger.token(), "'nobody-knows' is not among the issuer's keys")


async def test_garbage_and_missing_claims_are_refused(client):
    await refused(client, "not-a-jwt", "not a JWT")
    await refused(client, RSA.token(tenant=None), "no 'tenant' claim")


async def test_bearer_tokens_without_an_issuer_configured_are_refused(database_url, tmp_path):
    settings = Settings(database_url=database_url, nats_url=None, relay_enabled=False, frameworks_dir=tmp_path)
    async with TestClient(TestServer(create_app(settings, database_url=database_url, nats_url=None))) as client:
        response = await client.get(STATEMENTS, headers=bearer(RSA.token()))
        assert response.status == 401
        assert "LRS_OIDC_ISSUER" in (await response.json())["error"]


# -- the key set: rotation, rate limit, file ------------------------------------------------------


async def test_key_rotation_is_picked_up_on_the_first_token_with_a_new_kid(make_client, issuer):
    provider, url = issuer
    client = await make_client(jwks_url=url, jwks_min_refetch_s=3600)
    assert (await client.post(STATEMENTS, json=statement(), headers=bearer(RSA.token()))).status == 200
    assert provider.fetches == 1
    provider.signers = [ROTATED]  # the issuer rotates: rsa-1 retired, rsa-2 new
    response = await client.post(STATEMENTS, json=statement(), headers=bearer(ROTATED.token()))
    assert response.status == 200, await response.text()
    assert provider.fetches == 2
    # Unknown key ids again: no further fetch within the refetch interval.
    stranger = Signer("made-up", "ES256", ec.generate_private_key(ec.SECP256R1()))
    for _ in range(5):
        await refused(client, stranger.token(), "not among the issuer's keys")
    assert provider.fetches == 2
    assert (await client.post(STATEMENTS, json=statement(), headers=bearer(ROTATED.token()))).status == 200


async def test_the_key_set_is_cached(make_client, issuer):
    provider, url = issuer
    client = await make_client(jwks_url=url)
    for signer in (RSA, EC, ED, RSA):
        assert (await client.get(STATEMENTS, headers=bearer(signer.token()))).status == 200
    assert provider.fetches == 1


async def test_an_unreachable_issuer_is_503_not_401(make_client):
    client = await make_client(jwks_url="http://127.0.0.1:9/certs")
    response = await client.get(STATEMENTS, headers=bearer(RSA.token()))
    assert response.status == 503 and response.headers["Retry-After"]
    assert "issuer's keys" in (await response.json())["error"]


async def test_the_key_set_can_be_read_from_a_file(make_client, tmp_path):
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [EC.jwk, {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"}]}))
    client = await make_client(jwks_file=path)
    assert (await client.get(STATEMENTS, headers=bearer(EC.token()))).status == 200
    await refused(client, RSA.token(), "not among the issuer's keys")
    hs = unsigned_token({"alg": "HS256", "kid": "hmac"}, claims_of(),
                        lambda data: hmac.new(b"secret", data, hashlib.sha256).digest())
    await refused(client, hs, "not accepted")
