"""OIDC bearer tokens, the pure parts: header parsing, scopes, authority, claims, settings."""

from __future__ import annotations

import json

import pytest

from lrs.config import ConfigError, Settings
from lrs.oidc.claims import BearerError, bearer_token, credential_from_claims, oidc_authority, xapi_scopes
from lrs.oidc_settings import OidcSettings
from lrs.xapi.identity import authority_key
from lrs.xapi.statement import parse_statement

ISSUER = "https://id.example.gov/realms/lrs"
SETTINGS = OidcSettings(issuer=ISSUER, audiences=("lrs",), jwks_url="https://id.example.gov/certs")


def test_bearer_token_is_read_only_from_the_bearer_scheme():
    assert bearer_token("Bearer abc.def.ghi") == "abc.def.ghi"
    assert bearer_token("bearer   abc.def.ghi  ") == "abc.def.ghi"
    assert bearer_token("Basic dXNlcjpwdw==") is None
    assert bearer_token(None) is None
    with pytest.raises(BearerError, match="no token"):
        bearer_token("Bearer ")


def test_only_prefixed_known_scopes_count():
    granted = xapi_scopes("openid profile email xapi:statements/write xapi:state xapi:bogus", "xapi:", "scope")
    assert granted == {"statements/write", "state"}  # OIDC's "profile" is not xAPI's
    assert xapi_scopes(["xapi:all"], "xapi:", "scp") == {"all"}
    assert xapi_scopes("statements/read define", "", "scope") == {"statements/read", "define"}
    assert xapi_scopes(None, "xapi:", "scope") == frozenset()
    with pytest.raises(BearerError, match="'scp' claim"):
        xapi_scopes({"not": "a list"}, "xapi:", "scp")


def test_authority_is_the_user_or_the_client_and_user_pair():
    user = {"objectType": "Agent", "account": {"homePage": ISSUER, "name": "u-1"}}
    assert oidc_authority(ISSUER, "u-1", None) == user
    assert oidc_authority(ISSUER, "u-1", "u-1") == user
    pair = oidc_authority(ISSUER, "u-1", "mooc-platform")
    assert pair == {"objectType": "Group", "member": [
        {"objectType": "Agent", "account": {"homePage": ISSUER, "name": "mooc-platform"}}, user]}
    # What the LRS stamps passes its own authority rules (Data 2.4.9.s3.b1, 2.4.9.s7.b2).
    stamped = {"actor": {"mbox": "mailto:a@example.org"}, "verb": {"id": "http://example.org/v"},
               "object": {"id": "http://example.org/a"}, "authority": pair}
    parse_statement(json.dumps(stamped).encode(), "1.0.3")
    assert authority_key(pair) == f"group:account:{ISSUER}|mooc-platform&account:{ISSUER}|u-1"


def test_credential_from_claims():
    claims = {"sub": "u-1", "azp": "mooc", "tenant": "hanoi", "scope": "openid xapi:statements/write",
              "preferred_username": "an.nguyen"}
    credential = credential_from_claims(claims, SETTINGS)
    assert credential.tenant == "hanoi" and credential.scopes == {"statements/write"}
    assert credential.key == "oidc:u-1" and credential.name == "an.nguyen"
    assert credential.authority["member"][0]["account"]["name"] == "mooc"
    assert credential.may("POST", "/xapi/statements") and not credential.may("GET", "/xapi/statements")
    client_credentials = credential_from_claims({"sub": "svc", "client_id": "etl", "tenant": "t"}, SETTINGS)
    assert client_credentials.authority["member"][0]["account"]["name"] == "etl"
    assert client_credentials.scopes == frozenset()


@pytest.mark.parametrize(("claims", "message"), [
    ({"tenant": "t"}, "no subject"),
    ({"sub": "", "tenant": "t"}, "'sub' claim"),
    ({"sub": "u"}, "no 'tenant' claim"),
    ({"sub": "u", "tenant": "bad tenant!"}, "'tenant' claim"),
    ({"sub": "u", "tenant": 7}, "'tenant' claim"),
])
def test_claims_that_make_no_credential(claims, message):
    with pytest.raises(BearerError, match=message):
        credential_from_claims(claims, SETTINGS)


def test_default_tenant_and_other_claim_names():
    settings = OidcSettings(issuer=ISSUER, audiences=("lrs",), jwks_url="x", tenant_claim="org",
                            default_tenant="default", scope_claim="roles", scope_prefix="lrs-", client_claim="cid")
    credential = credential_from_claims({"sub": "u", "roles": ["lrs-all"], "cid": "app"}, settings)
    assert credential.tenant == "default" and credential.scopes == {"all"}
    assert credential_from_claims({"sub": "u", "org": "hue"}, settings).tenant == "hue"


BASE = {"LRS_OIDC_ISSUER": ISSUER, "LRS_OIDC_AUDIENCE": "lrs, lrs-admin", "LRS_OIDC_JWKS_URL": "https://id/certs"}


def test_settings_from_the_environment():
    assert Settings.from_env({}).oidc is None
    oidc = Settings.from_env({**BASE, "LRS_OIDC_ALGORITHMS": "ES256 EdDSA", "LRS_OIDC_LEEWAY_S": "5"}).oidc
    assert oidc.audiences == ("lrs", "lrs-admin") and oidc.algorithms == ("ES256", "EdDSA")
    assert oidc.leeway_s == 5 and oidc.scope_prefix == "xapi:"


@pytest.mark.parametrize(("change", "message"), [
    ({"LRS_OIDC_AUDIENCE": ""}, "LRS_OIDC_AUDIENCE is required"),
    ({"LRS_OIDC_ALGORITHMS": "RS256 HS256"}, "refused: HS256"),
    ({"LRS_OIDC_ALGORITHMS": "none"}, "refused: none"),
    ({"LRS_OIDC_JWKS_FILE": "/etc/jwks.json"}, "exactly one of"),
    ({"LRS_OIDC_JWKS_URL": ""}, "exactly one of"),
    ({"LRS_OIDC_LEEWAY_S": "-1"}, "LRS_OIDC_LEEWAY_S"),
])
def test_settings_that_are_refused(change, message):
    with pytest.raises(ConfigError, match=message):
        Settings.from_env({**BASE, **change})
