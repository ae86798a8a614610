"""HTTP Basic authentication against stored credentials.

The slow scrypt check runs in a worker thread, once per key per cache period;
concurrent first requests for one key share that single check.  A revocation
anywhere reaches every process through PostgreSQL (``forget``); while a
process cannot hear revocations, its cache is not trusted (``trust_cache``).
"""

from __future__ import annotations

import asyncio
import time
from typing import Awaitable, Callable

from lrs.auth import AuthError, Credential, VerifiedCache, verify_secret

# fetch(key) -> (secret_hash, Credential) or None when the key is unknown or revoked.
CredentialFetcher = Callable[[str], Awaitable[tuple[str, Credential] | None]]


class Authenticator:
    def __init__(self, fetch: CredentialFetcher, *, cache_ttl: float = 60.0) -> None:
        self._fetch = fetch
        self._cache = VerifiedCache(ttl=cache_ttl, clock=time.monotonic)
        self._inflight: dict[tuple[str, str], asyncio.Future[Credential | None]] = {}
        # Bumped by every forget: a check that read the credential before a
        # revocation must not put it back into the cache after it.
        self._generation = 0
        # False while revocations cannot be heard: every request takes the slow check.
        self.trust_cache = True

    def cached(self, key: str, secret: str) -> Credential | None:
        """The credential if this key and secret were verified recently, else None (cheap)."""
        return self._cache.lookup(key, secret) if self.trust_cache else None

    def checking(self, key: str, secret: str) -> bool:
        """Whether the slow check of this key and secret is running (a new request would join it)."""
        return (key, secret) in self._inflight

    async def authenticate(self, key: str, secret: str) -> Credential:
        credential = self.cached(key, secret)
        if credential is not None:
            return credential
        flight_key = (key, secret)
        pending = self._inflight.get(flight_key)
        if pending is None:
            pending = asyncio.ensure_future(self._slow_check(key, secret))
            self._inflight[flight_key] = pending
            pending.add_done_callback(lambda _f: self._inflight.pop(flight_key, None))
        credential = await asyncio.shield(pending)
        if credential is None:
            raise AuthError("invalid credentials")
        return credential

    async def _slow_check(self, key: str, secret: str) -> Credential | None:
        generation = self._generation
        found = await self._fetch(key)
        stored_hash, credential = found if found is not None else (None, None)
        # Unknown keys are checked against a dummy hash: same cost, same answer.
        ok = await asyncio.to_thread(verify_secret, secret, stored_hash)
        if not ok or credential is None:
            return None
        if self.trust_cache and generation == self._generation:
            self._cache.remember(key, secret, credential)
        return credential

    def forget(self, key: str) -> None:
        self._generation += 1
        self._cache.forget(key)

    def forget_all(self) -> None:
        self._generation += 1
        self._cache.clear()
