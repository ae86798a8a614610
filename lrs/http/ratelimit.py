"""Per-credential request rate limit that holds across worker processes.

One token bucket per credential key lives in PostgreSQL
(:mod:`lrs.store.rate_limits`), so N worker processes (or N instances on one
database) together allow the configured rate, not N times it.  A bucket
holds up to ``burst`` tokens and refills at ``rate`` tokens per second; a
request takes one token or is answered 429 with ``Retry-After``
(xAPI-Communication 3.2: "429 Too Many Requests ... too many requests being
received by a particular Client or set of credentials").

Asking the database for every request would cost a round trip each, so a
process takes tokens in leases of about ``lease_s`` seconds' worth of the
rate (at least 1, at most ``burst``) and spends them locally; concurrent
requests of one key share one lease request.  Tokens are debited from the
shared bucket when leased, so the sum over processes never exceeds
``burst + rate * t``; a lease not spent within ``lease_ttl_s`` is dropped
(the unspent tokens are lost, never granted twice).  After an empty lease
the key is refused locally until the bucket's next token is due, without
asking the database again.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass
from typing import Awaitable, Callable

from aiohttp import web

from lrs.config import Settings
from lrs.http.middleware import CREDENTIAL, Handler
from lrs.store.rate_limits import Lease

__all__ = ["LeaseFunction", "SharedRateLimiter", "rate_limit"]

_EPSILON = 1e-9  # float sums of clock steps land just short of a due time

# lease(key, want) -> tokens granted from the shared bucket (and what is left there).
LeaseFunction = Callable[[str, int], Awaitable[Lease]]


@dataclass(slots=True)
class _LocalLease:
    tokens: int = 0
    expires: float = 0.0
    refused_until: float = 0.0
    pending: asyncio.Future[None] | None = None


class SharedRateLimiter:
    """Token buckets by key, shared through ``lease``.  ``rate`` 0 means no limit."""

    def __init__(
        self, rate: float, burst: int, lease: LeaseFunction | None, *, lease_s: float = 0.05,
        lease_ttl_s: float = 1.0, clock: Callable[[], float] = time.monotonic, max_keys: int = 100_000,
    ) -> None:
        if rate < 0 or burst < 1:
            raise ValueError("rate must be >= 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._lease = lease
        self.lease_size = max(1, min(burst, math.ceil(rate * lease_s)))
        self._ttl = lease_ttl_s
        self._clock = clock
        self._max_keys = max_keys
        self._local: dict[str, _LocalLease] = {}

    @classmethod
    def from_settings(cls, settings: Settings, lease: LeaseFunction | None) -> "SharedRateLimiter":
        return cls(settings.rate_limit_per_s, settings.rate_limit_burst, lease)

    @property
    def enabled(self) -> bool:
        return self.rate > 0 and self._lease is not None

    def __len__(self) -> int:
        return len(self._local)

    def take_local(self, key: str) -> bool:
        """Count one request for ``key`` against this process's lease, if it
        holds a live token (what ``check`` does first), without a coroutine:
        False when ``check`` must be awaited."""
        local = self._local.get(key)
        if local is not None and local.tokens > 0 and self._clock() < local.expires:
            local.tokens -= 1
            return True
        return False

    async def check(self, key: str) -> float:
        """Count one request for ``key``: 0.0 if allowed, else seconds to wait."""
        if not self.enabled:
            return 0.0
        while True:
            now = self._clock()
            local = self._local.get(key)
            if local is None:
                if len(self._local) >= self._max_keys:
                    self._drop_idle(now)
                local = self._local[key] = _LocalLease()
            if local.tokens > 0 and now < local.expires:
                local.tokens -= 1
                return 0.0
            if local.refused_until - now > _EPSILON:
                return local.refused_until - now
            if local.pending is None:
                local.pending = asyncio.ensure_future(self._renew(key, local))
            await asyncio.shield(local.pending)

    async def _renew(self, key: str, local: _LocalLease) -> None:
        assert self._lease is not None
        try:
            lease = await self._lease(key, self.lease_size)
        finally:
            local.pending = None
        now = self._clock()
        local.tokens = lease.granted
        local.expires = now + self._ttl
        if lease.granted == 0:
            # At least a millisecond, so the caller's loop answers instead of asking again at once.
            local.refused_until = now + max((1.0 - lease.tokens_left) / self.rate, 0.001)

    def _drop_idle(self, now: float) -> None:
        for key, local in list(self._local.items()):
            if local.pending is None and now >= local.expires and now >= local.refused_until:
                del self._local[key]


def rate_limit(limiter: SharedRateLimiter):
    """Middleware (after authentication): 429 with Retry-After past the rate."""

    @web.middleware
    async def rate_limit_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        credential = request.get(CREDENTIAL)
        if credential is not None and limiter.enabled and not limiter.take_local(credential.key):
            wait = await limiter.check(credential.key)
            if wait > 0:
                raise web.HTTPTooManyRequests(
                    text=(
                        f"too many requests for credential {credential.key!r}: the limit is "
                        f"{limiter.rate:g} per second (burst {limiter.burst:g}) across all processes; "
                        "retry later"
                    ),
                    headers={"Retry-After": str(max(1, math.ceil(wait)))},
                )
        return await handler(request)

    return rate_limit_middleware
