"""Load shedding: refuse new work at once when the service has fallen behind.

Under more load than the machine can carry, queueing every request makes
every request slow (at 2,048 connections each waited seconds).  Instead,
while either

* more than ``LRS_SHED_QUEUE_STATEMENTS`` statements wait for group commit
  (accepted, not yet committed), or
* the event loop runs more than ``LRS_SHED_LOOP_LAG_MS`` late (measured by a
  timer that should fire every ``interval_s``), or
* ``LRS_SHED_MAX_IN_FLIGHT`` requests of this process are already being
  served (accepted, not yet answered): by Little's law this bounds how long
  an accepted request waits behind the others, or
* more requests are being served than this process finishes in
  ``LRS_SHED_LATENCY_MS`` at the rate it has been finishing them while busy
  (:class:`Capacity`): the same bound, measured instead of configured, so it
  follows the machine (a busy neighbour, a slower disk) without calibration,

a *new* request is answered 503 with ``Retry-After`` before anything of it
is read or checked.  ``Retry-After`` spreads the refused clients' returns
over as many seconds as the process needs to serve that many (1 to 30 s,
drawn at random per response, :func:`retry_after_s`): with 2,000 clients
refused every second by a process that serves a few hundred, answering them
all again a second later would cost the process more than it can spare.  Requests already accepted are not touched and finish
normally.  The operational probes and metrics are never shed.  This is the
outermost middleware: a refusal costs no log line, only a counter.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections import deque
from dataclasses import dataclass
from typing import AsyncIterator, Callable

from aiohttp import web

from lrs.http import keys
from lrs.http.metrics import EVENT_LOOP_LAG, REQUESTS_SHED
from lrs.http.middleware import Handler, error_response
from lrs.tasks import cancel_and_wait

__all__ = ["LoopLag", "SheddingBudget", "load_shedding", "overload_reason"]

NEVER_SHED = frozenset({"/health", "/ready", "/metrics"})
RETRY_AFTER_S = 1


@dataclass(frozen=True, slots=True)
class SheddingBudget:
    """0 turns a check off."""

    queue_statements: int
    loop_lag_s: float
    max_in_flight: int = 0
    latency_s: float = 0.0


def overload_reason(
    budget: SheddingBudget, pending_statements: int, loop_lag_s: float, in_flight: int = 0,
    finished_per_s: float | None = None,
) -> tuple[str, str] | None:
    """Which budget is exceeded ("in_flight", "latency", "queue" or "loop") and how,
    or None (pure).  ``finished_per_s``: the rate at which this process finishes
    requests while busy (None: not yet measured)."""
    if budget.max_in_flight and in_flight >= budget.max_in_flight:
        return "in_flight", (
            f"{in_flight} requests are being served (budget LRS_SHED_MAX_IN_FLIGHT={budget.max_in_flight})"
        )
    if budget.latency_s and finished_per_s is not None:
        limit = max(Capacity.BUSY, int(finished_per_s * budget.latency_s))
        if in_flight >= limit:
            return "latency", (
                f"{in_flight} requests are being served, more than finish within "
                f"{budget.latency_s * 1000:g} ms at {finished_per_s:.0f}/s "
                f"(budget LRS_SHED_LATENCY_MS={budget.latency_s * 1000:g})"
            )
    if budget.queue_statements and pending_statements > budget.queue_statements:
        return "queue", (
            f"{pending_statements} statements wait for commit "
            f"(budget LRS_SHED_QUEUE_STATEMENTS={budget.queue_statements})"
        )
    if budget.loop_lag_s and loop_lag_s > budget.loop_lag_s:
        return "loop", (
            f"the service runs {loop_lag_s * 1000:.0f} ms behind "
            f"(budget LRS_SHED_LOOP_LAG_MS={budget.loop_lag_s * 1000:g})"
        )
    return None


MAX_RETRY_AFTER_S = 30


def retry_after_s(shed_per_s: float, finished_per_s: float | None, draw: float) -> int:
    """Seconds a refused client should wait (pure; ``draw`` uniform in [0, 1)):
    uniform over 1..N, N the seconds the process needs to serve the requests
    it refuses in one (at most MAX_RETRY_AFTER_S); 1 while either rate is unknown."""
    if not finished_per_s or shed_per_s <= 0:
        return RETRY_AFTER_S
    spread = min(MAX_RETRY_AFTER_S, max(1, math.ceil(shed_per_s / finished_per_s)))
    return 1 + min(spread - 1, int(draw * spread))


class LoopLag:
    """How late the event loop runs, as a sustained state rather than one stall.

    A timer due every ``interval_s`` notes by how much it fired late; ``lag_s``
    is the *smallest* lateness of the last ``samples`` timers, the one now
    overdue (if any) counting as the latest.  A single long callback (a
    collection, one slow hash) therefore sheds nothing, while a loop that is
    late tick after tick, as under more requests than the CPU can take, is
    seen within ``samples`` ticks.
    """

    def __init__(self, interval_s: float = 0.025, samples: int = 3, clock: Callable[[], float] | None = None) -> None:
        self.interval_s = interval_s
        self._clock = clock
        self._recent: deque[float] = deque([0.0] * samples, maxlen=samples)
        self._due: float | None = None
        self.on_tick: Callable[[float], None] | None = None

    def _now(self) -> float:
        return self._clock() if self._clock is not None else asyncio.get_running_loop().time()

    @property
    def lag_s(self) -> float:
        recent = list(self._recent)
        if self._due is not None:
            overdue = self._now() - self._due
            if overdue > 0:
                recent = recent[1:] + [overdue]
        return min(recent)

    def tick(self, expected: float, now: float) -> None:
        """Record a timer due at ``expected`` that ran at ``now``."""
        late = max(0.0, now - expected)
        self._recent.append(late)
        EVENT_LOOP_LAG.observe(late)

    async def run(self) -> None:
        while True:
            self._due = self._now() + self.interval_s
            await asyncio.sleep(self.interval_s)
            due, self._due = self._due, None
            now = self._now()
            self.tick(due, now)
            if self.on_tick is not None:
                self.on_tick(now)


class InFlight:
    """Requests of this app being served now."""

    def __init__(self) -> None:
        self.count = 0


class Capacity:
    """How many requests a second this process finishes while it is busy.

    Requests finished are counted in windows of ``window_s``; a window in
    which at least ``BUSY`` requests were being served at every tick measures
    what the process can do (an idle window measures only what was asked, and
    is not used).  The estimate is a moving average of busy windows, so it
    follows the machine both ways: held at the limit, a process that has
    become faster finishes more requests a second and the limit rises.
    """

    BUSY = 32  # requests in flight: fewer are never shed for latency

    def __init__(self, window_s: float = 0.5) -> None:
        self.window_s = window_s
        self.finished = 0
        self.per_s: float | None = None
        self.shed = 0  # requests refused in this window, busy or not
        self.shed_per_s = 0.0
        self._started: float | None = None
        self._busy = True

    def tick(self, now: float, in_flight: int) -> None:
        """Called every few ms with the requests in flight now."""
        if self._started is None:
            self._started, self.finished, self.shed, self._busy = now, 0, 0, in_flight >= self.BUSY
            return
        self._busy = self._busy and in_flight >= self.BUSY
        elapsed = now - self._started
        if elapsed < self.window_s:
            return
        if self._busy and self.finished:
            rate = self.finished / elapsed
            self.per_s = rate if self.per_s is None else 0.5 * self.per_s + 0.5 * rate
        self.shed_per_s = self.shed / elapsed
        self._started, self.finished, self.shed, self._busy = now, 0, 0, in_flight >= self.BUSY


SHEDDING_BUDGET = web.AppKey("shedding_budget", SheddingBudget)
IN_FLIGHT = web.AppKey("in_flight", InFlight)
LOOP_LAG = web.AppKey("loop_lag", LoopLag)
CAPACITY = web.AppKey("capacity", Capacity)


async def loop_lag_monitor(app: web.Application) -> AsyncIterator[None]:
    """Cleanup context: measures the loop's lag (and the capacity, on the same ticks) while the app runs."""
    monitor, capacity, in_flight = app[LOOP_LAG], app[CAPACITY], app[IN_FLIGHT]
    monitor.on_tick = lambda now: capacity.tick(now, in_flight.count)
    task = asyncio.create_task(monitor.run(), name="lrs-loop-lag")
    try:
        yield
    finally:
        await cancel_and_wait(task)


def install(app: web.Application, settings: object) -> None:
    """Keeps the budget and the lag monitor on ``app`` (the middleware reads them)."""
    app[SHEDDING_BUDGET] = SheddingBudget(
        queue_statements=getattr(settings, "shed_queue_statements"),
        loop_lag_s=getattr(settings, "shed_loop_lag_ms") / 1000.0,
        max_in_flight=getattr(settings, "shed_max_in_flight"),
        latency_s=getattr(settings, "shed_latency_ms") / 1000.0,
    )
    app[IN_FLIGHT] = InFlight()
    app[CAPACITY] = Capacity()
    app[LOOP_LAG] = LoopLag()
    app.cleanup_ctx.append(loop_lag_monitor)


@web.middleware
async def load_shedding(request: web.Request, handler: Handler) -> web.StreamResponse:
    budget = request.app.get(SHEDDING_BUDGET)
    if budget is None or request.path in NEVER_SHED:
        return await handler(request)
    writer = request.app.get(keys.WRITER)
    pending = writer.pending_statements if writer is not None else 0
    in_flight = request.app[IN_FLIGHT]
    capacity = request.app[CAPACITY]
    overload = overload_reason(budget, pending, request.app[LOOP_LAG].lag_s, in_flight.count, capacity.per_s)
    if overload is None:
        in_flight.count += 1
        try:
            return await handler(request)
        finally:
            in_flight.count -= 1
            capacity.finished += 1
    kind, reason = overload
    REQUESTS_SHED.labels(kind).inc()
    capacity.shed += 1
    response = error_response(503, f"overloaded: {reason}; retry later")
    response.headers["Retry-After"] = str(retry_after_s(capacity.shed_per_s, capacity.per_s, random.random()))
    return response
