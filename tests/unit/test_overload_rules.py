"""Pure rules of abuse and overload: failure windows, shedding decisions, loop lag."""

from __future__ import annotations

import pytest
from aiohttp import web

from lrs.http.shedding import LoopLag, SheddingBudget, overload_reason, retry_after_s
from lrs.http.throttle import FailureWindow


class Clock:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


def test_a_name_is_throttled_after_the_limit_until_its_oldest_failure_leaves_the_window():
    clock = Clock()
    window = FailureWindow(3, 60.0, clock=clock)
    for step in range(3):
        assert window.retry_after("k") == 0.0
        window.record("k")
        clock.now += 10
    assert window.retry_after("k") == pytest.approx(30.0)  # first failure at 500, now 530
    assert window.retry_after("other") == 0.0
    clock.now += 30
    assert window.retry_after("k") == 0.0
    window.record("k")
    assert window.retry_after("k") == pytest.approx(10.0)  # failures at 510, 520, 560


def test_a_withdrawn_attempt_does_not_count():
    clock = Clock()
    window = FailureWindow(2, 60.0, clock=clock)
    stamp = window.record("k")
    window.withdraw("k", stamp)
    assert len(window) == 0
    window.record("k")
    clock.now += 1
    assert window.retry_after("k") == 0.0


def test_the_table_stays_bounded_by_dropping_expired_names():
    clock = Clock()
    window = FailureWindow(5, 10.0, clock=clock, max_names=3)
    for name in "abc":
        window.record(name)
    clock.now += 11
    window.record("d")
    assert len(window) == 1


@pytest.mark.parametrize("limit, window_s", [(0, 1.0), (1, 0.0)])
def test_bad_settings_are_refused(limit, window_s):
    with pytest.raises(ValueError):
        FailureWindow(limit, window_s, clock=Clock())


def test_overload_names_the_exceeded_budget():
    budget = SheddingBudget(queue_statements=100, loop_lag_s=0.2)
    assert overload_reason(budget, 100, 0.2) is None
    kind, message = overload_reason(budget, 101, 0.0)
    assert kind == "queue" and "LRS_SHED_QUEUE_STATEMENTS=100" in message
    kind, message = overload_reason(budget, 0, 0.25)
    assert kind == "loop" and "LRS_SHED_LOOP_LAG_MS=200" in message
    assert overload_reason(SheddingBudget(0, 0.0), 10**9, 100.0, 10**6) is None  # all off
    capped = SheddingBudget(queue_statements=0, loop_lag_s=0.0, max_in_flight=4)
    assert overload_reason(capped, 0, 0.0, 3) is None
    kind, message = overload_reason(capped, 0, 0.0, 4)
    assert kind == "in_flight" and "LRS_SHED_MAX_IN_FLIGHT=4" in message


def test_the_adaptive_limit_is_on_by_default_and_read_from_the_environment():
    from aiohttp import web as aioweb

    from lrs.config import Settings
    from lrs.http.shedding import ADMISSION, install

    defaults = Settings.from_env({})
    assert (defaults.shed_latency_ms, defaults.shed_min_in_flight) == (200.0, 32)
    app = aioweb.Application()
    install(app, Settings.from_env({"LRS_SHED_LATENCY_MS": "100", "LRS_SHED_MIN_IN_FLIGHT": "3"}))
    limit = app[ADMISSION].limit
    assert limit is not None and (limit.target_s, limit.min_limit) == (0.1, 3)
    off = aioweb.Application()
    install(off, Settings.from_env({"LRS_SHED_LATENCY_MS": "0"}))
    assert off[ADMISSION].limit is None


def test_refused_clients_are_spread_over_whole_seconds_up_to_the_spread():
    assert retry_after_s(1.0, 0.99) == 1
    draws = [retry_after_s(5.5, i / 100) for i in range(100)]
    assert min(draws) == 1 and max(draws) == 5 and len(set(draws)) == 5


def test_loop_lag_is_sustained_lateness_not_one_stall():
    clock = Clock()
    lag = LoopLag(interval_s=0.025, samples=3, clock=clock)
    assert lag.lag_s == 0.0
    lag.tick(1.0, 1.4)  # one stall
    assert lag.lag_s == 0.0
    lag.tick(2.0, 2.3)
    lag.tick(3.0, 3.2)
    assert lag.lag_s == pytest.approx(0.2)  # three late ticks in a row
    lag.tick(4.0, 4.0)
    assert lag.lag_s == 0.0


class _Authenticator:
    """Answers with the exception it is given (a stand-in for the slow check)."""

    def __init__(self, error: BaseException) -> None:
        self.error = error

    async def authenticate(self, key: str, secret: str):  # noqa: ANN201
        raise self.error


async def test_only_a_refused_credential_counts_as_a_failed_authentication():
    from lrs.auth import AuthError
    from lrs.http.throttle import AuthThrottle

    throttle = AuthThrottle(max_failures=1, max_address_failures=1, window_s=60.0, clock=Clock())
    with pytest.raises(ConnectionRefusedError):  # as when PostgreSQL is down
        await throttle.attempt(_Authenticator(ConnectionRefusedError("database down")), "k", "s", "10.0.0.1")
    throttle.check("k", "10.0.0.1")  # the outage counted nothing: not throttled
    with pytest.raises(AuthError):
        await throttle.attempt(_Authenticator(AuthError("wrong secret")), "k", "s", "10.0.0.1")
    with pytest.raises(web.HTTPTooManyRequests):
        throttle.check("k", "10.0.0.1")


def test_a_floor_above_the_limits_ceiling_is_refused_naming_the_setting():
    from lrs.config import ConfigError, Settings
    from lrs.http.concurrency_limit import MAX_LIMIT

    assert Settings.from_env({"LRS_SHED_MIN_IN_FLIGHT": str(MAX_LIMIT)}).shed_min_in_flight == MAX_LIMIT
    with pytest.raises(ConfigError, match="LRS_SHED_MIN_IN_FLIGHT must be <= 10000"):
        Settings.from_env({"LRS_SHED_MIN_IN_FLIGHT": str(MAX_LIMIT + 1)})
