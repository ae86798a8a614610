"""The adaptive concurrency limit (pure, fake clock): admission, cuts, growth, and
that it settles where a simulated server answers within the target."""

from __future__ import annotations

from collections import deque

import pytest

from lrs.http.concurrency_limit import AdaptiveLimit


def _limit(**kwargs) -> AdaptiveLimit:
    # Windows of an exact binary fraction (no rounding), each closed whatever finished in it.
    return AdaptiveLimit(0.25, window_s=0.125, min_samples=1, **kwargs)


def _admit(limit: AdaptiveLimit, count: int) -> int:
    return sum(limit.try_acquire() for _ in range(count))


def _window(limit: AdaptiveLimit, now: float, latencies: list[float], loop_lag_s: float = 0.0) -> float:
    """Requests with ``latencies`` finish by ``now + window``; the window closes then."""
    end = now + limit.window_s
    for latency in latencies:
        assert limit.try_acquire()
        limit.release(end - latency, end)
    assert limit.tick(end, loop_lag_s)
    return end


def test_admits_up_to_the_limit_and_refuses_the_next_until_one_finishes():
    limit = _limit(min_limit=4, initial=8)
    assert _admit(limit, 10) == 8 and limit.in_flight == 8
    limit.release(0.0, 0.1)
    assert limit.try_acquire() and not limit.try_acquire()


def test_latency_above_the_target_cuts_the_limit_to_what_finishes_within_it_at_the_measured_rate():
    limit = _limit(min_limit=4, initial=100)
    limit.tick(0.0)  # starts the first window
    now = _window(limit, 0.0, [0.3125] * 25)  # 25 finished in 0.125 s: 200/s
    assert limit.finished_per_s == pytest.approx(200.0) and limit.latency_s == pytest.approx(0.3125)
    assert limit.limit == 50  # 200/s × 250 ms
    now = _window(limit, now, [5.0] * 5)  # slower now: 40/s; a quarter of the half-second average
    assert limit.finished_per_s == pytest.approx(160.0) and limit.limit == 40
    for _ in range(16):
        now = _window(limit, now, [5.0])
    assert limit.limit == 4  # never below the minimum


def test_a_backlog_that_keeps_latency_high_does_not_ratchet_the_limit_down():
    limit = _limit(min_limit=4, initial=400)
    limit.tick(0.0)
    now = 0.0
    for _ in range(20):  # requests admitted long ago finish late, at a steady 200/s
        now = _window(limit, now, [3.0] * 25)
    assert limit.limit == 50


def test_the_window_is_taken_at_its_percentile_so_one_slow_request_does_not_cut():
    limit = _limit(min_limit=4, initial=100, percentile=0.95)
    limit.tick(0.0)
    _window(limit, 0.0, [0.05] * 19 + [3.0])
    assert limit.limit >= 100
    limit = _limit(min_limit=4, initial=100, percentile=0.95)
    limit.tick(0.0)
    _window(limit, 0.0, [0.05] * 18 + [3.0] * 2)
    assert limit.limit == 40  # 160/s × 250 ms


def test_the_event_loop_lag_counts_as_latency():
    limit = _limit(min_limit=4, initial=100)
    limit.tick(0.0)
    _window(limit, 0.0, [0.1] * 25, loop_lag_s=0.2)
    assert limit.latency_s == pytest.approx(0.3) and limit.limit == 50


def test_below_the_target_it_grows_only_while_demand_reaches_half_of_it():
    limit = _limit(min_limit=4, initial=100, increase=0.1)
    limit.tick(0.0)
    now = _window(limit, 0.0, [0.05] * 10)  # 10 in flight at most: idle, no growth
    assert limit.limit == 100
    assert _admit(limit, 60) == 60  # demand: 60 in flight
    now = _window(limit, now, [0.05] * 10)
    assert limit.limit == 108  # + 100 × 0.1 × (1 - 50/250)
    limit = _limit(min_limit=4, initial=100, increase=0.1)
    limit.tick(0.0)
    assert _admit(limit, 99) == 99
    _window(limit, 0.0, [0.245])  # near the target: the smallest step
    assert limit.limit == 101


def test_after_a_deep_cut_it_returns_to_what_finishes_in_time_as_soon_as_latency_allows():
    limit = _limit(min_limit=4, initial=100)
    limit.tick(0.0)
    now = _window(limit, 0.0, [2.0] * 3)  # a stall: 3 finished, late
    assert limit.limit == 6  # 24/s × 250 ms
    for expected in (12, 24, 48, 96):  # fast again (~500/s): doubling towards what finishes in 250 ms
        assert _admit(limit, limit.limit - 1) == limit.limit - 1  # demand fills the limit
        now = _window(limit, now, [0.04] * 62)
        while limit.in_flight:
            limit.release(now, now)
        assert limit.limit == expected
    assert limit.limit < limit.finished_per_s * 0.25


def test_it_never_exceeds_the_maximum():
    limit = _limit(min_limit=4, max_limit=20, initial=19)
    limit.tick(0.0)
    _admit(limit, 18)
    _window(limit, 0.0, [0.01])
    assert limit.limit == 20


def test_a_window_waits_for_enough_finished_requests_up_to_its_longest():
    limit = AdaptiveLimit(0.25, window_s=0.125, min_samples=10, max_window_s=1.0, initial=100)
    limit.tick(0.0)
    assert _admit(limit, 60) == 60
    for _ in range(3):
        limit.release(0.0, 0.1)
    assert not limit.tick(0.125)  # 3 finished: too few to judge
    for _ in range(7):
        limit.release(0.0, 0.2)
    assert limit.tick(0.25)  # 10: judged, the limit grows
    assert limit.limit > 100
    limit.release(0.25, 0.3)
    assert not limit.tick(0.9) and limit.tick(1.25)  # one finished: judged after max_window_s
    assert limit.finished_per_s < 10.0  # the half-second average counts the slow second


def test_rates_for_retry_after_are_measured_per_window():
    limit = _limit(min_limit=1, initial=2)
    limit.tick(0.0)
    assert _admit(limit, 5) == 2  # 3 refused
    limit.refused()  # and one for another reason
    limit.release(0.0, 0.05)
    limit.release(0.0, 0.05)
    assert limit.tick(0.125)
    assert limit.shed_per_s == pytest.approx(32.0) and limit.finished_per_s == pytest.approx(16.0)


def test_the_retry_spread_grows_while_refusals_outnumber_half_the_finished_and_shrinks_after():
    limit = _limit(min_limit=1, max_limit=10, initial=10)
    limit.tick(0.0)
    now = 0.0
    spreads = []
    for _ in range(24):  # 3 s: each window 10 finish and 100 are refused (20 × too many)
        assert _admit(limit, 110) == 10
        now += limit.window_s
        for _ in range(10):
            limit.release(now - 0.01, now)
        limit.tick(now)
        spreads.append(limit.retry_spread_s)
    assert spreads == sorted(spreads)
    assert spreads[7] == pytest.approx(4.0)  # at most 4 times a second
    assert spreads[15] == pytest.approx(16.0)
    assert spreads[-1] == AdaptiveLimit.MAX_SPREAD_S
    for _ in range(8):  # 1 s without refusals: halved
        assert _admit(limit, 10) == 10
        now += limit.window_s
        for _ in range(10):
            limit.release(now - 0.01, now)
        limit.tick(now)
    assert limit.retry_spread_s == pytest.approx(15.0)


@pytest.mark.parametrize("kwargs", [{"target_s": 0}, {"target_s": 0.2, "min_limit": 0},
                                    {"target_s": 0.2, "min_limit": 10, "max_limit": 5},
                                    {"target_s": 0.2, "percentile": 1.5}, {"target_s": 0.2, "min_samples": 0}])
def test_bad_parameters_are_refused(kwargs):
    with pytest.raises(ValueError):
        AdaptiveLimit(**kwargs)


class _Server:
    """A simulated process: serves admitted requests first come first served
    at ``rate`` a second plus ``base_s`` of its own, from clients that always
    want more than it can take."""

    def __init__(self, limit: AdaptiveLimit, rate: float, base_s: float = 0.01) -> None:
        self.limit, self.rate, self.base_s = limit, rate, base_s
        self.queue: deque[float] = deque()  # admission times
        self.credit = 0.0
        self.finished: list[tuple[float, float]] = []  # (time, latency)

    def run(self, start: float, seconds: float, dt: float = 0.005) -> float:
        now = start
        while now < start + seconds:
            while self.limit.try_acquire():
                self.queue.append(now)
            self.credit += self.rate * dt
            while self.credit >= 1 and self.queue and now - self.queue[0] >= self.base_s:
                admitted = self.queue.popleft()
                self.credit -= 1
                self.limit.release(admitted, now)
                self.finished.append((now, now - admitted))
            self.credit = min(self.credit, 1.0)
            now += dt
            self.limit.tick(now)
        return now

    def p99_since(self, since: float) -> float:
        latencies = sorted(latency for at, latency in self.finished if at >= since)
        return latencies[int(0.99 * (len(latencies) - 1))]


def test_it_settles_where_a_server_answers_within_the_target_and_follows_it_when_it_slows():
    limit = AdaptiveLimit(0.25, min_limit=4)  # the default window
    server = _Server(limit, rate=2000.0)
    now = server.run(0.0, 6.0)
    assert server.p99_since(3.0) <= 0.3
    assert 300 <= limit.limit <= 500  # 2,000/s × 250 ms = 500 at most
    served = len([1 for at, _ in server.finished if at >= 3.0]) / 3.0
    assert served >= 1900  # still serving at the full rate

    server.rate = 100.0  # a busy neighbour takes the CPU: what was admitted drains slowly, then
    now = server.run(now, 10.0)
    assert server.p99_since(now - 3.0) <= 0.3
    assert 4 <= limit.limit <= 30  # 100/s × 250 ms = 25, give or take a window's growth
