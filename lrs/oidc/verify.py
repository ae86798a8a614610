"""Verifying a bearer token (RFC 7519 JWT signed as RFC 7515 JWS) with PyJWT.

In order, each failure a :class:`BearerError` (401) that says what was wrong:

1. the header decodes and its ``alg`` is one of the configured asymmetric
   algorithms (RS256, ES256, EdDSA): ``none`` and every ``HS*`` are refused
   before any key is looked at, so a public key can never serve as an HMAC
   secret (key confusion);
2. the issuer's key named by ``kid`` exists and is for that algorithm;
3. the signature verifies, ``iss`` is the configured issuer, ``aud`` names
   one of the configured audiences, ``exp`` is in the future (and ``nbf``,
   ``iat`` not), within ``leeway_s`` seconds of clock skew; ``exp``, ``iss``,
   ``aud`` and ``sub`` are required;
4. the claims name a tenant (:func:`lrs.oidc.claims.credential_from_claims`).

The console's sign-in (:mod:`lrs.console.oidc_signin`) verifies the issuer's
ID tokens with the same checks (:meth:`BearerVerifier.verify_id_token`), the
console's client id as the audience, and maps their claims to a credential
with the same :func:`credential_from_claims`.
"""

from __future__ import annotations

import hmac
from typing import Any, Sequence

import jwt

from lrs.auth import Credential
from lrs.oidc.claims import BearerError, credential_from_claims
from lrs.oidc.jwks import KeySet
from lrs.oidc_settings import OidcSettings

__all__ = ["BearerVerifier"]

_REQUIRED = ["exp", "iss", "aud", "sub"]


class BearerVerifier:
    def __init__(self, settings: OidcSettings, keys: KeySet) -> None:
        self.settings = settings
        self.keys = keys

    async def authenticate(self, token: str) -> Credential:
        """A bearer token's credential (its audience one of ``LRS_OIDC_AUDIENCE``)."""
        claims = await self.verified_claims(token, self.settings.audiences, what="bearer token")
        return credential_from_claims(claims, self.settings)

    async def verify_id_token(self, token: str, client_id: str, nonce: str) -> dict[str, Any]:
        """The claims of an ID token the issuer gave the console's OAuth client
        (OpenID Connect Core 3.1.3.7): the same checks as a bearer token with the
        client id as the audience, plus the ``nonce`` of the sign-in attempt and,
        when the token names several audiences, ``azp`` naming the client."""
        claims = await self.verified_claims(token, (client_id,), what="ID token")
        if not isinstance(claims.get("nonce"), str) or not hmac.compare_digest(claims["nonce"], nonce):
            raise BearerError("the ID token's nonce is not the one this sign-in sent (a replayed or foreign token)")
        audience = claims.get("aud")
        if isinstance(audience, list) and len(audience) > 1 and claims.get("azp") != client_id:
            raise BearerError(f"the ID token names several audiences but its 'azp' is not {client_id!r}")
        return claims

    async def verified_claims(self, token: str, audiences: Sequence[str], *, what: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise BearerError(f"the {what} is not a JWT (malformed header)") from None
        algorithm = header.get("alg")
        if algorithm not in self.settings.algorithms:
            raise BearerError(
                f"the {what}'s algorithm {algorithm!r} is not accepted; accepted: {', '.join(self.settings.algorithms)}"
            )
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise BearerError(f"the {what}'s 'kid' header must be a string")
        key = await self.keys.key_for(kid, algorithm)
        settings = self.settings
        try:
            return jwt.decode(
                token,
                key.key,
                algorithms=[algorithm],
                audience=list(audiences),
                issuer=settings.issuer,
                leeway=settings.leeway_s,
                options={"require": _REQUIRED},
            )
        except jwt.ExpiredSignatureError:
            raise BearerError(f"the {what} has expired") from None
        except jwt.ImmatureSignatureError:
            raise BearerError(f"the {what} is not valid yet (nbf/iat in the future)") from None
        except jwt.InvalidAudienceError:
            raise BearerError(
                f"the {what} is not meant for this LRS: its audience is not {' or '.join(audiences)}"
            ) from None
        except jwt.InvalidIssuerError:
            raise BearerError(f"the {what} was not issued by {settings.issuer}") from None
        except jwt.MissingRequiredClaimError as err:
            raise BearerError(f"the {what} has no {err.claim!r} claim") from None
        except jwt.InvalidSignatureError:
            raise BearerError(f"the {what}'s signature does not verify with the issuer's key") from None
        except jwt.PyJWTError as err:
            raise BearerError(f"invalid {what}: {err}") from None
