"""The per-credential token bucket, driven by a fake clock."""

from __future__ import annotations

import pytest

from lrs.http.ratelimit import RateLimiter, TokenBucket


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_refusal_with_the_wait_until_the_next_token():
    clock = Clock()
    limiter = RateLimiter(rate=10, burst=3, clock=clock)
    assert [limiter.check("k") for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = limiter.check("k")
    assert wait == pytest.approx(0.1)
    clock.now += 0.05
    assert limiter.check("k") == pytest.approx(0.05)  # a refused request takes nothing
    clock.now += 0.05
    assert limiter.check("k") == 0.0
    assert limiter.check("k") > 0


def test_refill_is_capped_at_the_burst():
    clock = Clock()
    limiter = RateLimiter(rate=100, burst=5, clock=clock)
    for _ in range(5):
        assert limiter.check("k") == 0.0
    clock.now += 3600  # an hour idle refills 5 tokens, not 360000
    assert [limiter.check("k") for _ in range(5)] == [0.0] * 5
    assert limiter.check("k") > 0


def test_keys_have_their_own_buckets():
    clock = Clock()
    limiter = RateLimiter(rate=1, burst=1, clock=clock)
    assert limiter.check("a") == 0.0
    assert limiter.check("a") > 0
    assert limiter.check("b") == 0.0


def test_sustained_rate_is_the_configured_rate():
    clock = Clock()
    limiter = RateLimiter(rate=50, burst=10, clock=clock)
    allowed = 0
    for _ in range(10_000):  # 10 s of requests every millisecond
        clock.now += 0.001
        allowed += limiter.check("k") == 0.0
    assert 10 * 50 <= allowed <= 10 * 50 + 10 + 1


def test_rate_zero_turns_the_limit_off():
    limiter = RateLimiter(rate=0, burst=1, clock=Clock())
    assert not limiter.enabled
    assert all(limiter.check("k") == 0.0 for _ in range(1000))
    assert len(limiter) == 0


def test_full_buckets_are_dropped_when_the_table_is_full():
    clock = Clock()
    limiter = RateLimiter(rate=1, burst=2, clock=clock, max_keys=3)
    for key in "abc":
        limiter.check(key)
    assert len(limiter) == 3
    clock.now += 10  # every bucket refilled: nothing to remember
    limiter.check("d")
    assert len(limiter) == 1
    # A bucket still short of tokens is kept.
    limiter.check("d")
    for key in "ef":
        limiter.check(key)
    clock.now += 0.1
    limiter.check("g")
    assert limiter.check("d") > 0


def test_clock_going_backwards_never_adds_tokens():
    bucket = TokenBucket(tokens=0.0, updated=10.0)
    assert bucket.take(5.0, rate=1.0, burst=5.0) == pytest.approx(1.0)
    assert bucket.tokens == 0.0


@pytest.mark.parametrize("rate, burst", [(-1, 1), (1, 0)])
def test_bad_settings_are_refused(rate, burst):
    with pytest.raises(ValueError):
        RateLimiter(rate=rate, burst=burst)


def test_limits_from_the_environment():
    from lrs.config import ConfigError, Settings

    settings = Settings.from_env({"LRS_RATE_LIMIT_PER_S": "2.5", "LRS_RATE_LIMIT_BURST": "7",
                                  "LRS_MAX_BATCH_STATEMENTS": "50"})
    assert (settings.rate_limit_per_s, settings.rate_limit_burst, settings.max_batch_statements) == (2.5, 7, 50)
    limiter = RateLimiter.from_settings(settings)
    assert limiter.rate == 2.5 and limiter.burst == 7
    assert not RateLimiter.from_settings(Settings.from_env({"LRS_RATE_LIMIT_PER_S": "0"})).enabled
    for name, value in (("LRS_RATE_LIMIT_PER_S", "-1"), ("LRS_RATE_LIMIT_PER_S", "inf"),
                        ("LRS_RATE_LIMIT_BURST", "0"), ("LRS_MAX_BATCH_STATEMENTS", "0")):
        with pytest.raises(ConfigError, match=name):
            Settings.from_env({name: value})
