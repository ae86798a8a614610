"""An adaptive limit on the requests one process serves at once (pure).

A process that admits every request makes every request wait: at 2,048
connections each waited seconds.  A fixed cap either wastes the machine
(group commit gets faster with more statements per transaction, so more in
flight can mean more answered per second) or is too high when the machine
is slower than the day it was chosen (a busy neighbour, a slow disk).  So the
cap is found by measuring, in the manner of TCP congestion control and of
Netflix's concurrency-limits and Envoy's adaptive concurrency filter:

* every ``window_s`` the latency of the requests finished in the window is
  taken at ``percentile`` and the event loop's lag is added to it (a request
  waits in the loop before it is seen, then again for every step it takes);
* above ``target_s`` the limit is cut to the number of requests the process
  finishes within the target at the rate it has been finishing them (a
  moving average over windows): by Little's law a request waits for the
  number in flight over that rate.  While the process is behind, the rate is
  what it can do, and it is measured now, whereas the latencies are those
  of requests admitted a while ago: a process that slowed down twentyfold
  has its limit cut twentyfold within a few windows, not over the seconds
  its backlog takes to drain.  Cutting again in the next window to the same
  number changes nothing, so a backlog that keeps latency high for a while
  does not ratchet the limit down;
* at or below the target, while at least half the limit was in use (demand
  reaches it; an idle process never raises it), the limit rises to that
  same number, what finishes within the target at the measured rate (at
  most doubling in a window): throughput does not fall as concurrency rises
  (group commit batches more), so by Little's law that many still answer in
  time, and a limit cut deep by a stall comes back as soon as the rate does.
  Beyond it, it probes upward by up to ``increase`` of itself a window, in
  proportion to the headroom left, so it settles where latency meets the
  target instead of oscillating around it;
* it stays within ``min_limit`` (that many requests are always admitted,
  whatever their latency: a few large batches are slow on their own, not for
  want of shedding) and ``max_limit``.

The class holds no clock: every call is given ``now`` (seconds, monotonic),
so it is tested with a fake one.
"""

from __future__ import annotations

import math

__all__ = ["MAX_LIMIT", "AdaptiveLimit"]

# The most requests one worker ever admits at once; LRS_SHED_MIN_IN_FLIGHT may not exceed it.
MAX_LIMIT = 10_000


class AdaptiveLimit:
    MAX_SAMPLES = 4096  # per window; more finished requests in one window are counted, not kept
    RATE_HORIZON_S = 0.5  # the finishing rate is a moving average over about this long
    # Retry-After: refused clients are told to come back over ``retry_spread_s``
    # seconds, a spread that grows while more are refused than half the number
    # finished (every refusal costs the process work that serves no one) and
    # shrinks back to 1 s when fewer are: by up to 4 times a second when
    # refusals are 4 times too many or more (2,000 clients refused at once
    # and told "1 s" come back at once), by half a second at most.
    REFUSED_PER_FINISHED = 0.5
    SPREAD_HORIZON_S = 1.0
    MAX_SPREAD_GROWTH = 4.0
    MAX_SPREAD_S = 30.0

    def __init__(
        self,
        target_s: float,
        *,
        min_limit: int = 32,
        max_limit: int = MAX_LIMIT,
        initial: int | None = None,
        window_s: float = 0.1,
        percentile: float = 0.95,
        increase: float = 0.1,
        min_samples: int = 10,
        max_window_s: float = 1.0,
    ) -> None:
        if target_s <= 0 or window_s <= 0 or not 0 < percentile <= 1 or increase <= 0 or min_samples < 1:
            raise ValueError("target_s, window_s and increase must be positive and percentile in (0, 1]")
        if not 1 <= min_limit <= max_limit:
            raise ValueError("need 1 <= min_limit <= max_limit")
        self.target_s = target_s
        self.min_limit = min_limit
        self.max_limit = max_limit
        self.window_s = window_s
        self.percentile = percentile
        self.increase = increase
        self.min_samples = min_samples
        self.max_window_s = max(window_s, max_window_s)
        self._limit = float(min(max_limit, max(min_limit, initial if initial is not None else 4 * min_limit)))
        self.in_flight = 0
        self.latency_s: float | None = None  # the last window's measure (percentile + loop lag)
        self.finished_per_s: float | None = None  # moving average over windows with requests in flight
        self.shed_per_s = 0.0  # refused in the last window, per second
        self.retry_spread_s = 1.0
        self._window_start: float | None = None  # the first tick starts the first window
        self._samples: list[float] = []
        self._finished = 0
        self._shed = 0
        self._peak = 0

    @property
    def limit(self) -> int:
        return int(self._limit)

    def try_acquire(self) -> bool:
        """Admit one request (True: the caller must ``release`` it) or refuse it."""
        if self.in_flight >= self.limit:
            self._shed += 1
            return False
        self.in_flight += 1
        self._peak = max(self._peak, self.in_flight)
        return True

    def refused(self) -> None:
        """Counts a request refused for another reason (it shapes Retry-After)."""
        self._shed += 1

    def release(self, started: float, now: float) -> None:
        """A request admitted at ``started`` finished at ``now``."""
        self.in_flight -= 1
        self._finished += 1
        if len(self._samples) < self.MAX_SAMPLES:
            self._samples.append(now - started)

    def tick(self, now: float, loop_lag_s: float = 0.0) -> bool:
        """Called every few ms; closes the window once ``window_s`` has passed
        and ``min_samples`` requests have finished in it (or ``max_window_s``
        has passed: a slow process is judged on what it finished).  Returns
        whether a window closed."""
        if self._window_start is None:
            self._window_start = now
            return False
        elapsed = now - self._window_start
        if elapsed < self.window_s or (len(self._samples) < self.min_samples and elapsed < self.max_window_s):
            return False
        if self._finished or self._peak:  # an idle window says nothing of the rate
            rate = self._finished / elapsed
            if self.finished_per_s is None:
                self.finished_per_s = rate
            else:  # weighted by the window's length: windows are longer when little finishes
                weight = min(1.0, elapsed / self.RATE_HORIZON_S)
                self.finished_per_s += weight * (rate - self.finished_per_s)
        self.shed_per_s = self._shed / elapsed
        self._spread(elapsed)
        if self._samples:
            self.latency_s = self._quantile(self._samples) + max(0.0, loop_lag_s)
            self._adjust(self.latency_s)
        self._window_start = now
        self._samples = []
        self._finished = self._shed = 0
        self._peak = self.in_flight
        return True

    def _adjust(self, latency_s: float) -> None:
        if latency_s > self.target_s:
            finish_in_time = (self.finished_per_s or 0.0) * self.target_s
            self._limit = max(float(self.min_limit), min(self._limit, finish_in_time))
        elif 2 * self._peak >= self.limit:
            headroom = 1.0 - latency_s / self.target_s
            probe = self._limit + max(1.0, self._limit * self.increase * headroom)
            finish_in_time = min(2 * self._limit, (self.finished_per_s or 0.0) * self.target_s)
            self._limit = min(float(self.max_limit), max(probe, finish_in_time))

    def _spread(self, elapsed: float) -> None:
        wanted = self.REFUSED_PER_FINISHED * (self.finished_per_s or 0.0)
        if self.shed_per_s <= 0 or wanted <= 0:
            ratio = 0.5 if self.shed_per_s <= 0 else self.MAX_SPREAD_GROWTH
        else:
            ratio = min(self.MAX_SPREAD_GROWTH, max(0.5, self.shed_per_s / wanted))
        step = ratio ** min(1.0, elapsed / self.SPREAD_HORIZON_S)
        self.retry_spread_s = min(self.MAX_SPREAD_S, max(1.0, self.retry_spread_s * step))

    def _quantile(self, samples: list[float]) -> float:
        ordered = sorted(samples)
        return ordered[min(len(ordered) - 1, math.ceil(self.percentile * len(ordered)) - 1)]
