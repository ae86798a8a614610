"""The OpenID Connect settings: bearer tokens (``LRS_OIDC_*``, docs/oidc.md)
and the console's sign-in through the same issuer (``LRS_CONSOLE_OIDC_*``,
docs/console.md), read by :meth:`lrs.config.Settings.from_env`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from lrs.config_values import ConfigError, _float, _nonnegative

# The signature algorithms a bearer token may use: asymmetric only, so a
# public key can never be used as an HMAC secret, and never "none".
OIDC_ALGORITHMS = ("RS256", "ES256", "EdDSA")


def _words(raw: str) -> tuple[str, ...]:
    return tuple(word for word in raw.replace(",", " ").split() if word)


@dataclass(frozen=True, slots=True)
class OidcSettings:
    """How ``Authorization: Bearer <JWT>`` is verified (``LRS_OIDC_*``)."""

    issuer: str
    audiences: tuple[str, ...]
    jwks_url: str | None = None
    jwks_file: Path | None = None
    algorithms: tuple[str, ...] = OIDC_ALGORITHMS
    leeway_s: float = 30.0
    # Claims: the tenant (its absence falls back to default_tenant, or the
    # token is refused), the xAPI scopes (a space-separated string or a list;
    # only values starting with scope_prefix count, the prefix removed), and
    # the OAuth client the token was issued to.
    tenant_claim: str = "tenant"
    default_tenant: str | None = None
    scope_claim: str = "scope"
    scope_prefix: str = "xapi:"
    client_claim: str = "azp"
    # JWKS from a URL: kept this long, refetched at most this often when a
    # token names a key id the cached set lacks (key rotation).
    jwks_cache_s: float = 3600.0
    jwks_min_refetch_s: float = 30.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "OidcSettings | None":
        issuer = env.get("LRS_OIDC_ISSUER") or None
        if issuer is None:
            return None
        audiences = _words(env.get("LRS_OIDC_AUDIENCE") or "")
        if not audiences:
            raise ConfigError("LRS_OIDC_AUDIENCE is required when LRS_OIDC_ISSUER is set")
        jwks_url = env.get("LRS_OIDC_JWKS_URL") or None
        jwks_file = Path(env["LRS_OIDC_JWKS_FILE"]) if env.get("LRS_OIDC_JWKS_FILE") else None
        if (jwks_url is None) == (jwks_file is None):
            raise ConfigError("set exactly one of LRS_OIDC_JWKS_URL and LRS_OIDC_JWKS_FILE with LRS_OIDC_ISSUER")
        algorithms = _words(env.get("LRS_OIDC_ALGORITHMS") or "") or OIDC_ALGORITHMS
        refused = sorted(set(algorithms) - set(OIDC_ALGORITHMS))
        if refused:
            raise ConfigError(
                f"LRS_OIDC_ALGORITHMS may list only {', '.join(OIDC_ALGORITHMS)}; refused: {', '.join(refused)}"
            )
        return cls(
            issuer=issuer,
            audiences=audiences,
            jwks_url=jwks_url,
            jwks_file=jwks_file,
            algorithms=algorithms,
            leeway_s=_nonnegative(_float(env, "LRS_OIDC_LEEWAY_S", 30.0), "LRS_OIDC_LEEWAY_S"),
            tenant_claim=env.get("LRS_OIDC_TENANT_CLAIM") or "tenant",
            default_tenant=env.get("LRS_OIDC_DEFAULT_TENANT") or None,
            scope_claim=env.get("LRS_OIDC_SCOPE_CLAIM") or "scope",
            scope_prefix=env.get("LRS_OIDC_SCOPE_PREFIX", "xapi:"),
            client_claim=env.get("LRS_OIDC_CLIENT_CLAIM") or "azp",
            jwks_cache_s=_nonnegative(_float(env, "LRS_OIDC_JWKS_CACHE_S", 3600.0), "LRS_OIDC_JWKS_CACHE_S"),
            jwks_min_refetch_s=_nonnegative(
                _float(env, "LRS_OIDC_JWKS_MIN_REFETCH_S", 30.0), "LRS_OIDC_JWKS_MIN_REFETCH_S"
            ),
        )


@dataclass(frozen=True)
class ConsoleOidcSettings:
    """Signing in to the console through the OIDC issuer (``LRS_CONSOLE_OIDC_*``,
    docs/console.md): the console is an OAuth client of the issuer of
    ``LRS_OIDC_ISSUER``; its ID tokens are verified with that issuer's keys."""

    client_id: str
    client_secret: str | None = None  # None: a public client (PKCE only)
    provider_name: str = "OpenID Connect"
    # Else read from <issuer>/.well-known/openid-configuration on first use.
    authorization_url: str | None = None
    token_url: str | None = None
    scopes: tuple[str, ...] = ("openid",)
    # Else derived from the request (set it behind a proxy that rewrites the host).
    redirect_url: str | None = None
    timeout_s: float = 10.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "ConsoleOidcSettings | None":
        client_id = env.get("LRS_CONSOLE_OIDC_CLIENT_ID") or None
        if client_id is None:
            return None
        if not env.get("LRS_OIDC_ISSUER"):
            raise ConfigError("LRS_CONSOLE_OIDC_CLIENT_ID needs LRS_OIDC_ISSUER (the issuer whose ID tokens it accepts)")
        if bool(env.get("LRS_CONSOLE_OIDC_AUTHORIZATION_URL")) != bool(env.get("LRS_CONSOLE_OIDC_TOKEN_URL")):
            raise ConfigError(
                "set both LRS_CONSOLE_OIDC_AUTHORIZATION_URL and LRS_CONSOLE_OIDC_TOKEN_URL, or neither (discovery)"
            )
        scopes = _words(env.get("LRS_CONSOLE_OIDC_SCOPES") or "") or ("openid",)
        if "openid" not in scopes:
            raise ConfigError("LRS_CONSOLE_OIDC_SCOPES must include openid")
        return cls(
            client_id=client_id,
            client_secret=env.get("LRS_CONSOLE_OIDC_CLIENT_SECRET") or None,
            provider_name=env.get("LRS_CONSOLE_OIDC_PROVIDER_NAME") or "OpenID Connect",
            authorization_url=env.get("LRS_CONSOLE_OIDC_AUTHORIZATION_URL") or None,
            token_url=env.get("LRS_CONSOLE_OIDC_TOKEN_URL") or None,
            scopes=scopes,
            redirect_url=env.get("LRS_CONSOLE_OIDC_REDIRECT_URL") or None,
        )
