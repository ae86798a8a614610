"""The per-credential rate limiter's local leases, over a fake shared bucket and a fake clock.

The shared bucket itself (PostgreSQL) is tested in tests/integration/test_store_rate_limits.py
and across two app instances in tests/e2e/test_abuse_api.py.
"""

from __future__ import annotations

import asyncio

import pytest

from lrs.http.ratelimit import SharedRateLimiter
from lrs.store.rate_limits import Lease


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeBucket:
    """The shared bucket's arithmetic, counting how often it is asked."""

    def __init__(self, clock: Clock, rate: float, burst: float) -> None:
        self.clock, self.rate, self.burst = clock, rate, burst
        self.tokens, self.updated = burst, clock.now
        self.calls = 0

    async def lease(self, key: str, want: int) -> Lease:
        self.calls += 1
        await asyncio.sleep(0)
        now = self.clock.now
        self.tokens = min(self.burst, self.tokens + max(0.0, now - self.updated) * self.rate)
        self.updated = now
        granted = min(want, int(self.tokens + 1e-9))
        self.tokens -= granted
        return Lease(granted, self.tokens)


def make(rate: float, burst: int, **kwargs) -> tuple[SharedRateLimiter, FakeBucket, Clock]:
    clock = Clock()
    bucket = FakeBucket(clock, rate, burst)
    return SharedRateLimiter(rate, burst, bucket.lease, clock=clock, **kwargs), bucket, clock


async def test_burst_then_refusal_with_the_wait_until_the_next_token():
    limiter, bucket, clock = make(rate=10, burst=3)
    assert limiter.lease_size == 1  # 10/s * 0.05 s rounds up to one token a lease
    assert [await limiter.check("k") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert await limiter.check("k") == pytest.approx(0.1)
    calls = bucket.calls
    clock.now += 0.05
    assert await limiter.check("k") == pytest.approx(0.05)  # refused locally, the bucket is not asked
    assert bucket.calls == calls
    clock.now += 0.05
    assert await limiter.check("k") == 0.0
    assert await limiter.check("k") > 0


async def test_leases_spare_the_shared_bucket_one_round_trip_per_request():
    limiter, bucket, clock = make(rate=10_000, burst=20_000)
    assert limiter.lease_size == 500
    for _ in range(1000):
        assert await limiter.check("k") == 0.0
    assert bucket.calls == 2


async def test_concurrent_requests_share_one_lease_request():
    limiter, bucket, clock = make(rate=1000, burst=1000)
    results = await asyncio.gather(*(limiter.check("k") for _ in range(40)))
    assert results == [0.0] * 40
    assert bucket.calls == 1


async def test_two_limiters_on_one_bucket_admit_the_rate_once_not_twice():
    clock = Clock()
    bucket = FakeBucket(clock, rate=50, burst=10)
    first = SharedRateLimiter(50, 10, bucket.lease, clock=clock)
    second = SharedRateLimiter(50, 10, bucket.lease, clock=clock)
    allowed = 0
    for step in range(10_000):  # 10 s of requests every millisecond, alternating between processes
        clock.now += 0.001
        allowed += await (first if step % 2 else second).check("k") == 0.0
    assert 10 * 50 - 2 * first.lease_size <= allowed <= 10 * 50 + 10


async def test_unspent_leases_expire_and_are_not_reused():
    limiter, bucket, clock = make(rate=100, burst=100, lease_ttl_s=1.0)
    assert await limiter.check("k") == 0.0  # leased 5, spent 1
    clock.now += 2.0
    calls = bucket.calls
    assert await limiter.check("k") == 0.0
    assert bucket.calls == calls + 1


async def test_a_failing_bucket_fails_the_request_and_the_next_one_asks_again():
    clock = Clock()
    attempts = 0

    async def broken(key: str, want: int) -> Lease:
        nonlocal attempts
        attempts += 1
        raise ConnectionRefusedError("database down")

    limiter = SharedRateLimiter(10, 10, broken, clock=clock)
    for _ in range(2):
        with pytest.raises(ConnectionRefusedError):
            await limiter.check("k")
    assert attempts == 2


async def test_rate_zero_turns_the_limit_off():
    limiter, bucket, clock = make(rate=0, burst=1)
    assert not limiter.enabled
    assert all([await limiter.check("k") == 0.0 for _ in range(100)])
    assert len(limiter) == 0 and bucket.calls == 0


async def test_idle_keys_are_dropped_when_the_table_is_full():
    limiter, bucket, clock = make(rate=1, burst=2, max_keys=3)
    for key in "abc":
        await limiter.check(key)
    assert len(limiter) == 3
    clock.now += 10  # every lease expired: nothing to remember
    await limiter.check("d")
    assert len(limiter) == 1


@pytest.mark.parametrize("rate, burst", [(-1, 1), (1, 0)])
def test_bad_settings_are_refused(rate, burst):
    with pytest.raises(ValueError):
        SharedRateLimiter(rate, burst, None)


def test_limits_from_the_environment():
    from lrs.config import ConfigError, Settings

    settings = Settings.from_env({"LRS_RATE_LIMIT_PER_S": "2.5", "LRS_RATE_LIMIT_BURST": "7",
                                  "LRS_MAX_BATCH_STATEMENTS": "50"})
    assert (settings.rate_limit_per_s, settings.rate_limit_burst, settings.max_batch_statements) == (2.5, 7, 50)

    async def lease(key: str, want: int) -> Lease:
        return Lease(want, 0.0)

    limiter = SharedRateLimiter.from_settings(settings, lease)
    assert limiter.rate == 2.5 and limiter.burst == 7 and limiter.enabled
    assert not SharedRateLimiter.from_settings(Settings.from_env({"LRS_RATE_LIMIT_PER_S": "0"}), lease).enabled
    for name, value in (("LRS_RATE_LIMIT_PER_S", "-1"), ("LRS_RATE_LIMIT_PER_S", "inf"),
                        ("LRS_RATE_LIMIT_BURST", "0"), ("LRS_MAX_BATCH_STATEMENTS", "0"),
                        ("LRS_AUTH_FAILURES_PER_KEY", "0"), ("LRS_AUTH_FAILURE_WINDOW_S", "0"),
                        ("LRS_SHED_LOOP_LAG_MS", "-5"), ("LRS_SHED_QUEUE_STATEMENTS", "-1"),
                        ("LRS_SHED_LATENCY_MS", "-1"), ("LRS_SHED_MIN_IN_FLIGHT", "0")):
        with pytest.raises(ConfigError, match=name):
            Settings.from_env({name: value})


async def test_take_local_spends_the_lease_check_would_and_nothing_else():
    limiter, bucket, clock = make(rate=100, burst=10)  # leases of 5 tokens
    assert not limiter.take_local("k")  # no lease yet: check must ask the bucket
    assert bucket.calls == 0
    assert await limiter.check("k") == 0.0  # takes a lease of 5, spends 1
    assert [limiter.take_local("k") for _ in range(5)] == [True] * 4 + [False]
    assert bucket.calls == 1
    assert await limiter.check("k") == 0.0  # the next lease
    clock.now += 10  # the lease expired: its tokens are not spent locally
    assert not limiter.take_local("k")
