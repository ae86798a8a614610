"""Throttling of failed authentication, per credential key and per client address.

A wrong secret costs the server one scrypt hash (tens of milliseconds of
CPU); an unknown key costs the same, by design.  A client that keeps failing
would otherwise keep the CPU busy and slow everyone else down.  So after
``max_failures`` failed attempts within ``window_s`` seconds for one key, or
``max_address_failures`` from one client address, further attempts that
would need the slow check are answered 429 with ``Retry-After`` *before*
the hash runs (xAPI-Communication 3.2 allows 429 for "too many requests ...
by a particular Client or set of credentials").

A request whose key and secret this process has already verified is served
from the cache and never throttled, and concurrent requests with the same key
and secret share one check, counted once: a flood of wrong secrets for a key
therefore cannot lock its rightful owner out of a process that knows them.

Attempts are counted as failures while their hash runs, so a burst of
concurrent attempts cannot slip past the limit before any of them fails.
The counters are per process (see docs/operations.md).
"""

from __future__ import annotations

import math
import time
from collections import deque
from typing import Callable

from aiohttp import web

from lrs.auth import AuthError, Credential
from lrs.config import Settings
from lrs.http.authn import Authenticator
from lrs.http.metrics import AUTH_THROTTLED

__all__ = ["AuthThrottle", "FailureWindow", "authenticate_basic"]


class FailureWindow:
    """Recent failures by name (a key or an address) in a sliding window (pure; clock passed in).

    Each name keeps at most ``limit`` timestamps, and names whose failures
    have all left the window are dropped when the table grows past
    ``max_names``, so memory stays bounded whatever is sent.
    """

    def __init__(self, limit: int, window_s: float, *, clock: Callable[[], float], max_names: int = 100_000) -> None:
        if limit < 1 or window_s <= 0:
            raise ValueError("limit must be >= 1 and window_s > 0")
        self.limit = limit
        self.window_s = window_s
        self._clock = clock
        self._max_names = max_names
        self._failures: dict[str, deque[float]] = {}

    def __len__(self) -> int:
        return len(self._failures)

    def retry_after(self, name: str) -> float:
        """0.0 if ``name`` may try again now, else the seconds until it may."""
        failures = self._failures.get(name)
        if failures is None:
            return 0.0
        now = self._clock()
        while failures and failures[0] <= now - self.window_s:
            failures.popleft()
        if not failures:
            del self._failures[name]
            return 0.0
        if len(failures) < self.limit:
            return 0.0
        return failures[0] + self.window_s - now

    def record(self, name: str) -> float:
        """Count one failure for ``name``; returns its timestamp (to :meth:`withdraw` it)."""
        now = self._clock()
        failures = self._failures.get(name)
        if failures is None:
            if len(self._failures) >= self._max_names:
                self._drop_expired(now)
            failures = self._failures[name] = deque(maxlen=self.limit)
        failures.append(now)
        return now

    def withdraw(self, name: str, stamp: float) -> None:
        """Take back a failure counted by :meth:`record` (the attempt succeeded)."""
        failures = self._failures.get(name)
        if failures is None:
            return
        try:
            failures.remove(stamp)
        except ValueError:
            return
        if not failures:
            del self._failures[name]

    def _drop_expired(self, now: float) -> None:
        for name, failures in list(self._failures.items()):
            if not failures or failures[-1] <= now - self.window_s:
                del self._failures[name]


class AuthThrottle:
    """The two windows (per key, per client address) of one process."""

    def __init__(
        self, *, max_failures: int, max_address_failures: int, window_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.keys = FailureWindow(max_failures, window_s, clock=clock)
        self.addresses = FailureWindow(max_address_failures, window_s, clock=clock)

    @classmethod
    def from_settings(cls, settings: Settings) -> "AuthThrottle":
        return cls(
            max_failures=settings.auth_failures_per_key,
            max_address_failures=settings.auth_failures_per_address,
            window_s=settings.auth_failure_window_s,
        )

    def check(self, key: str, address: str) -> None:
        """Raise 429 (with Retry-After) if the key or the address is throttled."""
        wait_key = self.keys.retry_after(key)
        wait_address = self.addresses.retry_after(address)
        if wait_key <= 0 and wait_address <= 0:
            return
        if wait_key >= wait_address:
            what = f"credential key {key!r} ({self.keys.limit} failures"
        else:
            what = f"client address {address} ({self.addresses.limit} failures"
        wait = max(wait_key, wait_address)
        AUTH_THROTTLED.inc()
        raise web.HTTPTooManyRequests(
            text=f"too many failed authentications for {what} within {self.keys.window_s:g} s); retry later",
            headers={"Retry-After": str(max(1, math.ceil(wait)))},
        )

    async def attempt(self, authenticator: Authenticator, key: str, secret: str, address: str) -> Credential:
        """The slow check, counted as a failure for key and address unless it succeeds."""
        stamp_key = self.keys.record(key)
        stamp_address = self.addresses.record(address)
        try:
            credential = await authenticator.authenticate(key, secret)
        except AuthError:
            raise  # a wrong key or secret: the failures stay counted
        except BaseException:
            # No answer about the credential (the store was unavailable, the
            # request was cancelled): nothing to count. Counting it locked a
            # legitimate key out with 429 for a minute after PostgreSQL came back.
            self.keys.withdraw(key, stamp_key)
            self.addresses.withdraw(address, stamp_address)
            raise
        self.keys.withdraw(key, stamp_key)
        self.addresses.withdraw(address, stamp_address)
        return credential


AUTH_THROTTLE = web.AppKey("auth_throttle", AuthThrottle)


async def authenticate_basic(request: web.Request, authenticator: Authenticator, key: str, secret: str) -> Credential:
    """Basic authentication with failure throttling: a cached (already verified)
    key and secret pass at once; anything needing the slow hash is first
    checked against the throttle."""
    credential = authenticator.cached(key, secret)
    if credential is not None:
        return credential
    throttle = request.app.get(AUTH_THROTTLE)
    if throttle is None or authenticator.checking(key, secret):
        # Joining a check already running costs no hash: it is counted once, by its first request.
        return await authenticator.authenticate(key, secret)
    address = request.remote or "unknown"
    throttle.check(key, address)
    return await throttle.attempt(authenticator, key, secret, address)
