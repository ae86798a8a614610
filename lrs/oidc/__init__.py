"""OpenID Connect bearer tokens: ``Authorization: Bearer <JWT>`` beside HTTP Basic.

- :mod:`lrs.oidc.claims` (pure): from verified claims to a :class:`lrs.auth.Credential`
  (tenant, xAPI scopes, the authority stamped on statements).
- :mod:`lrs.oidc.jwks`: the issuer's JSON Web Key Set, from a URL (cached, refetched
  on an unknown key id at most every ``jwks_min_refetch_s``) or from a file.
- :mod:`lrs.oidc.verify`: signature, algorithm, issuer, audience and expiry checks
  (PyJWT), every failure a :class:`BearerError` (401).

Configuration: ``LRS_OIDC_*`` (:class:`lrs.oidc_settings.OidcSettings`); docs/oidc.md.
"""

from lrs.oidc.claims import BearerError, bearer_token, credential_from_claims
from lrs.oidc.jwks import JwksUnavailable, KeySet
from lrs.oidc.verify import BearerVerifier

__all__ = [
    "BearerError",
    "BearerVerifier",
    "JwksUnavailable",
    "KeySet",
    "bearer_token",
    "credential_from_claims",
]
