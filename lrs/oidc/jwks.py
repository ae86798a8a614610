"""The issuer's JSON Web Key Set (RFC 7517), kept in memory.

``KeySet`` reads the set through ``fetch`` (an HTTP GET of the issuer's
``jwks_uri``, or a file read for offline deployments) and:

- keeps it ``cache_s`` seconds, then fetches it again on the next token;
- on a token whose ``kid`` the set lacks (the issuer rotated its keys),
  fetches again at once, but such fetches happen at most once every
  ``min_refetch_s`` seconds, so a stream of tokens with made-up key ids
  cannot turn the LRS into a load generator against the issuer;
- after a failed fetch, tries again no sooner than ``min_refetch_s`` later;
- concurrent refreshes share one fetch;
- when a refresh fails but keys are known, keeps using them (logged); with
  no keys at all, :class:`JwksUnavailable` (503: the issuer is unreachable,
  not the client's fault).

A key is used only for the algorithm it is for (its ``alg``, else its
``kty``/``crv``): an RSA key never verifies an ``ES256`` or ``HS256`` token.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any, Awaitable, Callable

import aiohttp
import jwt
import structlog

from lrs.oidc.claims import BearerError

__all__ = ["JwksUnavailable", "KeySet", "file_fetcher", "url_fetcher"]

log = structlog.get_logger("lrs.oidc")

Fetch = Callable[[], Awaitable[dict[str, Any]]]


class JwksUnavailable(Exception):
    """The key set could not be read and no earlier copy is known."""


def url_fetcher(session: aiohttp.ClientSession, url: str, timeout_s: float = 10.0) -> Fetch:
    async def fetch() -> dict[str, Any]:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=timeout_s)) as response:
            if response.status != 200:
                raise JwksUnavailable(f"GET {url} answered {response.status}")
            return await response.json(content_type=None)

    return fetch


def file_fetcher(path: Path) -> Fetch:
    async def fetch() -> dict[str, Any]:
        text = await asyncio.to_thread(path.read_text, "utf-8")
        return json.loads(text)

    return fetch


def parse_key_set(document: Any) -> dict[str | None, jwt.PyJWK]:
    """Signing keys by ``kid`` (None for a key without one); keys this LRS cannot
    use (encryption keys, unknown types) are left out."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise JwksUnavailable("the key set is not a JSON object with a 'keys' array")
    keys: dict[str | None, jwt.PyJWK] = {}
    for entry in document["keys"]:
        # Symmetric ("oct") keys are secrets, never published verification keys.
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig" or entry.get("kty") == "oct":
            continue
        try:
            key = jwt.PyJWK(entry)
        except jwt.PyJWTError:
            continue
        keys[key.key_id] = key
    return keys


class KeySet:
    def __init__(
        self,
        fetch: Fetch,
        *,
        cache_s: float,
        min_refetch_s: float,
        source: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._cache_s = cache_s
        self._min_refetch_s = min_refetch_s
        self._source = source
        self._clock = clock
        self._keys: dict[str | None, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self._unknown_kid_fetch_at: float | None = None
        self._refreshing: asyncio.Future[None] | None = None
        self.fetches = 0

    async def load(self) -> int:
        """Read the key set now (at start, for a file); returns the number of keys."""
        await self._refresh(required=True)
        return len(self._keys)

    async def key_for(self, kid: str | None, algorithm: str) -> jwt.PyJWK:
        """The key that verifies a token with header ``kid`` and ``alg``."""
        if not self._keys:
            if not self._may_refetch():
                raise JwksUnavailable(f"the issuer's keys could not be read from {self._source}; retry later")
            await self._refresh(required=True)
        elif self._stale() and self._may_refetch():
            await self._refresh(required=False)
        key = self._lookup(kid)
        if key is None and self._may_refetch_for_unknown_kid():
            self._unknown_kid_fetch_at = self._clock()
            await self._refresh(required=False)
            key = self._lookup(kid)
        if key is None:
            if kid is None:
                raise BearerError("the token names no key ('kid') and the issuer has several keys")
            raise BearerError(f"the token's key id {kid!r} is not among the issuer's keys")
        if key.algorithm_name != algorithm:
            raise BearerError(
                f"the token says {algorithm} but its key {kid!r} is for {key.algorithm_name}"
            )
        return key

    def _lookup(self, kid: str | None) -> jwt.PyJWK | None:
        if kid is None and len(self._keys) == 1:
            return next(iter(self._keys.values()))
        return self._keys.get(kid)

    def _stale(self) -> bool:
        return self._fetched_at is None or self._clock() - self._fetched_at >= self._cache_s

    def _may_refetch_for_unknown_kid(self) -> bool:
        last = self._unknown_kid_fetch_at
        return last is None or self._clock() - last >= self._min_refetch_s

    def _may_refetch(self) -> bool:
        return self._attempted_at is None or self._clock() - self._attempted_at >= self._min_refetch_s

    async def _refresh(self, *, required: bool) -> None:
        if self._refreshing is None:
            self._refreshing = asyncio.ensure_future(self._do_refresh())
            self._refreshing.add_done_callback(self._refresh_done)
        try:
            await asyncio.shield(self._refreshing)
        except (JwksUnavailable, aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError) as err:
            if required or not self._keys:
                raise JwksUnavailable(f"the issuer's keys could not be read from {self._source}: {err}") from None
            log.warning("jwks refresh failed; keeping the known keys", source=self._source, error=str(err))

    def _refresh_done(self, _future: asyncio.Future[None]) -> None:
        self._refreshing = None

    async def _do_refresh(self) -> None:
        self._attempted_at = self._clock()
        self.fetches += 1
        keys = parse_key_set(await self._fetch())
        self._keys = keys
        self._fetched_at = self._clock()
        log.info("jwks loaded", source=self._source, keys=len(keys))
