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

The counts hold across worker processes: every attempt about to run the slow
hash is first counted in PostgreSQL (:mod:`lrs.store.auth_failures`, one
statement for key and address together), so N failures split over any number
of processes throttle the key.  That costs one database write per hash, never
more: a refused name is remembered in the process until its window ends and
refused again without asking the database, and each process also keeps its
own window, which refuses before any round trip.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from typing import Awaitable, Callable

import structlog

from aiohttp import web

from lrs.auth import AuthError, Credential
from lrs.config import Settings
from lrs.http.authn import Authenticator
from lrs.http.client_address import client_address
from lrs.http.metrics import AUTH_THROTTLED

__all__ = ["AuthThrottle", "FailureWindow", "SharedFailures", "authenticate_basic"]

log = structlog.get_logger("lrs.http.throttle")


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


@dataclass(frozen=True, slots=True)
class SharedFailures:
    """The failure counts of every process (:mod:`lrs.store.auth_failures` on the pool)."""

    # admit(name -> limit) -> (refused name -> seconds to wait, counted name -> window start)
    admit: Callable[[dict[bytes, int]], Awaitable[tuple[dict[bytes, float], dict[bytes, datetime]]]]
    withdraw: Callable[[dict[bytes, datetime]], Awaitable[None]]
    digest: Callable[[str, str], bytes]


class AuthThrottle:
    """The two windows (per key, per client address) of this process, and the
    counts shared with every other process (``shared``; None: this process only)."""

    def __init__(
        self, *, max_failures: int, max_address_failures: int, window_s: float,
        clock: Callable[[], float] = time.monotonic, shared: SharedFailures | None = None,
        max_refused: int = 100_000,
    ) -> None:
        self.keys = FailureWindow(max_failures, window_s, clock=clock)
        self.addresses = FailureWindow(max_address_failures, window_s, clock=clock)
        self.shared = shared
        self._clock = clock
        # Names the shared counts refused, until when: refused again with no round trip.
        self._refused: dict[tuple[str, str], float] = {}
        self._max_refused = max_refused
        # Attempts under way by (key, secret): a concurrent request joins one (no second count, no second hash).
        self._attempts: dict[tuple[str, str], asyncio.Future[Credential]] = {}

    @classmethod
    def from_settings(cls, settings: Settings, shared: SharedFailures | None = None) -> "AuthThrottle":
        return cls(
            max_failures=settings.auth_failures_per_key,
            max_address_failures=settings.auth_failures_per_address,
            window_s=settings.auth_failure_window_s,
            shared=shared,
        )

    def _refused_for(self, kind: str, name: str) -> float:
        until = self._refused.get((kind, name))
        if until is None:
            return 0.0
        wait = until - self._clock()
        if wait <= 0:
            del self._refused[(kind, name)]
            return 0.0
        return wait

    def _refusal(self, key: str, address: str, wait_key: float, wait_address: float) -> web.HTTPTooManyRequests | None:
        """The 429 for these waits (seconds per name), or None if neither name must wait."""
        if wait_key <= 0 and wait_address <= 0:
            return None
        if wait_key >= wait_address:
            what = f"credential key {key!r} ({self.keys.limit} failures"
        else:
            what = f"client address {address} ({self.addresses.limit} failures"
        wait = max(wait_key, wait_address)
        AUTH_THROTTLED.inc()
        return web.HTTPTooManyRequests(
            text=f"too many failed authentications for {what} within {self.keys.window_s:g} s); retry later",
            headers={"Retry-After": str(max(1, math.ceil(wait)))},
        )

    def check(self, key: str, address: str) -> None:
        """Raise 429 (with Retry-After) if the key or the address is throttled (no I/O)."""
        wait_key = max(self.keys.retry_after(key), self._refused_for("key", key))
        wait_address = max(self.addresses.retry_after(address), self._refused_for("address", address))
        refusal = self._refusal(key, address, wait_key, wait_address)
        if refusal is not None:
            raise refusal

    async def _admit_shared(self, key: str, address: str) -> dict[bytes, datetime]:
        """Count the attempt in the shared counts; 429 if another process's failures
        already reached a limit.  Returns what was counted (to withdraw)."""
        if self.shared is None:
            return {}
        key_name, address_name = self.shared.digest("key", key), self.shared.digest("address", address)
        refused, counted = await self.shared.admit({key_name: self.keys.limit, address_name: self.addresses.limit})
        if not refused:
            return counted
        if counted:  # not an attempt after all: the other name stays as it was
            await self.shared.withdraw(counted)
        now = self._clock()
        if len(self._refused) >= self._max_refused:
            self._refused = {name: until for name, until in self._refused.items() if until > now}
        # A refused name waits at least a moment, even if its window ends as we speak.
        wait_key = max(refused[key_name], 1e-3) if key_name in refused else 0.0
        wait_address = max(refused[address_name], 1e-3) if address_name in refused else 0.0
        if wait_key > 0:
            self._refused[("key", key)] = now + wait_key
        if wait_address > 0:
            self._refused[("address", address)] = now + wait_address
        refusal = self._refusal(key, address, wait_key, wait_address)
        assert refusal is not None
        raise refusal

    async def _withdraw_shared(self, counted: dict[bytes, datetime]) -> None:
        if self.shared is None or not counted:
            return
        try:
            await self.shared.withdraw(counted)
        except Exception as exc:  # the count stays until its window ends: a stricter limit, never a looser one
            log.warning("failed authentication count not withdrawn", error=type(exc).__name__)

    def joinable(self, key: str, secret: str) -> asyncio.Future[Credential] | None:
        """The attempt with this key and secret under way, if any (joining it costs nothing)."""
        return self._attempts.get((key, secret))

    async def attempt(self, authenticator: Authenticator, key: str, secret: str, address: str) -> Credential:
        """The slow check, counted once as a failure for key and address unless it
        succeeds; concurrent requests with the same key and secret join it."""
        flight = (key, secret)
        pending = self._attempts.get(flight)
        if pending is None:
            pending = asyncio.ensure_future(self._attempt(authenticator, key, secret, address))
            self._attempts[flight] = pending
            pending.add_done_callback(lambda _f: self._attempts.pop(flight, None))
        return await asyncio.shield(pending)

    async def _attempt(self, authenticator: Authenticator, key: str, secret: str, address: str) -> Credential:
        stamp_key = self.keys.record(key)
        stamp_address = self.addresses.record(address)
        try:
            counted = await self._admit_shared(key, address)
        except BaseException:
            self.keys.withdraw(key, stamp_key)
            self.addresses.withdraw(address, stamp_address)
            raise
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
            await self._withdraw_shared(counted)
            raise
        self.keys.withdraw(key, stamp_key)
        self.addresses.withdraw(address, stamp_address)
        await self._withdraw_shared(counted)
        return credential


AUTH_THROTTLE = web.AppKey("auth_throttle", AuthThrottle)


async def authenticate_basic(request: web.Request, authenticator: Authenticator, key: str, secret: str) -> Credential:
    """Basic authentication with failure throttling: a cached (already verified)
    key and secret pass at once; anything needing the slow hash is first
    checked against the throttle."""
    credential = authenticator.cached(key, secret)
    if credential is not None:
        return credential
    throttle = request.config_dict.get(AUTH_THROTTLE)  # the service's, also from the console sub-app
    if throttle is None or authenticator.checking(key, secret):
        # Joining a check already running costs no hash: it is counted once, by its first request.
        return await authenticator.authenticate(key, secret)
    joined = throttle.joinable(key, secret)
    if joined is not None:
        return await asyncio.shield(joined)
    address = client_address(request)
    throttle.check(key, address)
    return await throttle.attempt(authenticator, key, secret, address)
