"""Per-credential request rate limit: a token bucket per credential key.

Each process keeps its own buckets (N processes allow N times the rate).
A bucket holds up to ``burst`` tokens and refills at ``rate`` tokens per
second; a request takes one token or is answered 429 with ``Retry-After``
(xAPI-Communication 3.2: "429 Too Many Requests ... too many requests
being received by a particular Client or set of credentials").  The bucket
logic is pure (the clock is passed in) so it is tested without waiting.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

from aiohttp import web

from lrs.config import Settings
from lrs.http.middleware import CREDENTIAL, Handler

__all__ = ["RateLimiter", "TokenBucket", "rate_limit"]

_EPSILON = 1e-9


@dataclass(slots=True)
class TokenBucket:
    tokens: float
    updated: float

    def refill(self, now: float, rate: float, burst: float) -> None:
        if now > self.updated:
            self.tokens = min(burst, self.tokens + (now - self.updated) * rate)
            self.updated = now

    def take(self, now: float, rate: float, burst: float) -> float:
        """Take one token: 0.0 if there was one, else the seconds until there is."""
        self.refill(now, rate, burst)
        if self.tokens >= 1.0 - _EPSILON:  # float sums of refills land just below 1.0
            self.tokens = max(0.0, self.tokens - 1.0)
            return 0.0
        return (1.0 - self.tokens) / rate


class RateLimiter:
    """Token buckets by key.  ``rate`` 0 means no limit.

    Buckets that have refilled completely carry no information; they are
    dropped when the table grows past ``max_keys``, so memory stays bounded
    however many keys are seen.
    """

    def __init__(
        self, rate: float, burst: int, *, clock: Callable[[], float] = time.monotonic, max_keys: int = 100_000
    ) -> None:
        if rate < 0 or burst < 1:
            raise ValueError("rate must be >= 0 and burst >= 1")
        self.rate = rate
        self.burst = float(burst)
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: dict[str, TokenBucket] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> "RateLimiter":
        return cls(settings.rate_limit_per_s, settings.rate_limit_burst)

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def __len__(self) -> int:
        return len(self._buckets)

    def check(self, key: str) -> float:
        """Count one request for ``key``: 0.0 if allowed, else seconds to wait."""
        if not self.enabled:
            return 0.0
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self._max_keys:
                self._drop_full(now)
            bucket = self._buckets[key] = TokenBucket(self.burst, now)
        return bucket.take(now, self.rate, self.burst)

    def _drop_full(self, now: float) -> None:
        for key, bucket in list(self._buckets.items()):
            bucket.refill(now, self.rate, self.burst)
            if bucket.tokens >= self.burst:
                del self._buckets[key]


def rate_limit(limiter: RateLimiter):
    """Middleware (after authentication): 429 with Retry-After past the rate."""

    @web.middleware
    async def rate_limit_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        credential = request.get(CREDENTIAL)
        if credential is not None and limiter.enabled:
            wait = limiter.check(credential.key)
            if wait > 0:
                raise web.HTTPTooManyRequests(
                    text=(
                        f"too many requests for credential {credential.key!r}: the limit is "
                        f"{limiter.rate:g} per second (burst {limiter.burst:g}); retry later"
                    ),
                    headers={"Retry-After": str(max(1, math.ceil(wait)))},
                )
        return await handler(request)

    return rate_limit_middleware
