"""From a verified token's claims to a credential (pure).

- ``sub`` names the user (or the service account of a client-credentials
  token); the tenant comes from ``tenant_claim`` (or ``default_tenant``);
  the xAPI scopes are the values of ``scope_claim`` that start with
  ``scope_prefix`` (``xapi:statements/write`` grants ``statements/write``);
  OIDC's own scopes (``openid``, ``profile``, ``email``) grant nothing.
- The authority (Data 2.4.9): the user as an Agent identified by ``account``
  with the issuer as ``homePage`` and ``sub`` as ``name``; when the token was
  issued to an OAuth client (``client_claim``, else ``client_id``) other than
  the subject itself, the anonymous Group of two Agents, the client first
  (identified by ``account``, the client id as ``name``: 2.4.9.s7.b1-b3) and
  the user second (2.4.9.s3.b1: "a Group with two Agents. The two Agents
  represent an application and user together").
"""

from __future__ import annotations

from typing import Any, Mapping

from lrs.auth import SCOPES, AuthError, Credential, validate_tenant
from lrs.oidc_settings import OidcSettings

__all__ = ["BearerError", "bearer_token", "credential_from_claims", "oidc_authority", "xapi_scopes"]


class BearerError(AuthError):
    """A bearer token was refused (401 with a ``Bearer`` challenge)."""

    challenge = 'Bearer realm="lrs", error="invalid_token"'


def bearer_token(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, else None."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    token = value.strip()
    if not token:
        raise BearerError("the Bearer Authorization header carries no token")
    return token


def xapi_scopes(value: Any, prefix: str, claim: str) -> frozenset[str]:
    """The xAPI scopes among a scope claim's values (a space-separated string or a list)."""
    if value is None:
        return frozenset()
    if isinstance(value, str):
        values = value.split()
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        values = value
    else:
        raise BearerError(f"the token's {claim!r} claim must be a string or a list of strings")
    found = set()
    for item in values:
        if prefix and not item.startswith(prefix):
            continue
        scope = item[len(prefix):]
        if scope in SCOPES:
            found.add(scope)
    return frozenset(found)


def _agent(homepage: str, name: str) -> dict[str, Any]:
    return {"objectType": "Agent", "account": {"homePage": homepage, "name": name}}


def oidc_authority(issuer: str, subject: str, client: str | None) -> dict[str, Any]:
    """The authority for statements sent with a token of ``subject`` issued to ``client``."""
    user = _agent(issuer, subject)
    if client is None or client == subject:
        return user
    return {"objectType": "Group", "member": [_agent(issuer, client), user]}


def _string_claim(claims: Mapping[str, Any], name: str) -> str | None:
    value = claims.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise BearerError(f"the token's {name!r} claim must be a non-empty string")
    return value


def credential_from_claims(claims: Mapping[str, Any], settings: OidcSettings) -> Credential:
    """The credential of a token whose signature, issuer, audience and expiry were checked."""
    subject = _string_claim(claims, "sub")
    if subject is None:
        raise BearerError("the token has no subject ('sub' claim)")
    tenant = _string_claim(claims, settings.tenant_claim) or settings.default_tenant
    if tenant is None:
        raise BearerError(f"the token has no {settings.tenant_claim!r} claim naming the tenant")
    try:
        validate_tenant(tenant)
    except ValueError as err:
        raise BearerError(f"the token's {settings.tenant_claim!r} claim: {err}") from None
    client = _string_claim(claims, settings.client_claim) or _string_claim(claims, "client_id")
    scopes = xapi_scopes(claims.get(settings.scope_claim), settings.scope_prefix, settings.scope_claim)
    name = claims.get("preferred_username")
    return Credential(
        key=f"oidc:{subject}",
        tenant=tenant,
        scopes=scopes,
        name=name if isinstance(name, str) else None,
        authority=oidc_authority(settings.issuer, subject, client),
    )
