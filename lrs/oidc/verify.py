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
"""

from __future__ import annotations

import jwt

from lrs.auth import Credential
from lrs.config import OidcSettings
from lrs.oidc.claims import BearerError, credential_from_claims
from lrs.oidc.jwks import KeySet

__all__ = ["BearerVerifier"]

_REQUIRED = ["exp", "iss", "aud", "sub"]


class BearerVerifier:
    def __init__(self, settings: OidcSettings, keys: KeySet) -> None:
        self.settings = settings
        self.keys = keys

    async def authenticate(self, token: str) -> Credential:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise BearerError("the bearer token is not a JWT (malformed header)") from None
        algorithm = header.get("alg")
        if algorithm not in self.settings.algorithms:
            raise BearerError(
                f"the token's algorithm {algorithm!r} is not accepted; accepted: {', '.join(self.settings.algorithms)}"
            )
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise BearerError("the token's 'kid' header must be a string")
        key = await self.keys.key_for(kid, algorithm)
        settings = self.settings
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[algorithm],
                audience=list(settings.audiences),
                issuer=settings.issuer,
                leeway=settings.leeway_s,
                options={"require": _REQUIRED},
            )
        except jwt.ExpiredSignatureError:
            raise BearerError("the bearer token has expired") from None
        except jwt.ImmatureSignatureError:
            raise BearerError("the bearer token is not valid yet (nbf/iat in the future)") from None
        except jwt.InvalidAudienceError:
            raise BearerError(
                f"the bearer token is not meant for this LRS: its audience is not {' or '.join(settings.audiences)}"
            ) from None
        except jwt.InvalidIssuerError:
            raise BearerError(f"the bearer token was not issued by {settings.issuer}") from None
        except jwt.MissingRequiredClaimError as err:
            raise BearerError(f"the bearer token has no {err.claim!r} claim") from None
        except jwt.InvalidSignatureError:
            raise BearerError("the bearer token's signature does not verify with the issuer's key") from None
        except jwt.PyJWTError as err:
            raise BearerError(f"invalid bearer token: {err}") from None
        return credential_from_claims(claims, settings)
