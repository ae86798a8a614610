"""The HTTP side of OIDC bearer tokens: the verifier's cleanup context and the
per-request check (:mod:`lrs.oidc` holds the rules)."""

from __future__ import annotations

from typing import AsyncIterator

import aiohttp
import structlog
from aiohttp import web

from lrs.auth import Credential
from lrs.config import ConfigError
from lrs.http import keys
from lrs.oidc import BearerError, BearerVerifier, JwksUnavailable, KeySet
from lrs.oidc.jwks import file_fetcher, url_fetcher

__all__ = ["authenticate_bearer", "bearer_verifier"]

log = structlog.get_logger("lrs.oidc")


async def authenticate_bearer(app: web.Application, token: str) -> Credential:
    verifier = app.get(keys.BEARER_VERIFIER)
    if verifier is None:
        raise BearerError("bearer tokens are not accepted: this LRS has no OIDC issuer (LRS_OIDC_ISSUER)")
    try:
        return await verifier.authenticate(token)
    except JwksUnavailable as err:
        log.error("jwks unavailable", error=str(err))
        raise web.HTTPServiceUnavailable(
            text=f"cannot verify bearer tokens now: {err}", headers={"Retry-After": "30"}
        ) from None


async def bearer_verifier(app: web.Application) -> AsyncIterator[None]:
    """Cleanup context: the verifier (and the HTTP session its key set is fetched with)."""
    settings = app[keys.SETTINGS].oidc
    if settings is None:
        yield
        return
    async with aiohttp.ClientSession() as session:
        if settings.jwks_file is not None:
            fetch, source = file_fetcher(settings.jwks_file), str(settings.jwks_file)
        else:
            assert settings.jwks_url is not None
            fetch, source = url_fetcher(session, settings.jwks_url), settings.jwks_url
        key_set = KeySet(
            fetch, cache_s=settings.jwks_cache_s, min_refetch_s=settings.jwks_min_refetch_s, source=source
        )
        if settings.jwks_file is not None:
            try:  # a broken file stops the start with its reason
                await key_set.load()
            except JwksUnavailable as err:
                raise ConfigError(f"LRS_OIDC_JWKS_FILE: {err}") from None
        app[keys.BEARER_VERIFIER] = BearerVerifier(settings, key_set)
        log.info("oidc bearer tokens accepted", issuer=settings.issuer, jwks=source)
        yield
