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
  an accepted request waits behind the others,

a *new* request is answered 503 with ``Retry-After`` before anything of it
is read or checked.  Requests already accepted are not touched and finish
normally.  The operational probes and metrics are never shed.  This is the
outermost middleware: a refusal costs no log line, only a counter.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass
from typing import AsyncIterator, Callable

from aiohttp import web

from lrs.http import keys
from lrs.http.metrics import REQUESTS_SHED
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


def overload_reason(
    budget: SheddingBudget, pending_statements: int, loop_lag_s: float, in_flight: int = 0
) -> tuple[str, str] | None:
    """Which budget is exceeded ("in_flight", "queue" or "loop") and how, or None (pure)."""
    if budget.max_in_flight and in_flight >= budget.max_in_flight:
        return "in_flight", (
            f"{in_flight} requests are being served (budget LRS_SHED_MAX_IN_FLIGHT={budget.max_in_flight})"
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
        self._recent.append(max(0.0, now - expected))

    async def run(self) -> None:
        while True:
            self._due = self._now() + self.interval_s
            await asyncio.sleep(self.interval_s)
            due, self._due = self._due, None
            self.tick(due, self._now())


class InFlight:
    """Requests of this app being served now."""

    def __init__(self) -> None:
        self.count = 0


SHEDDING_BUDGET = web.AppKey("shedding_budget", SheddingBudget)
IN_FLIGHT = web.AppKey("in_flight", InFlight)
LOOP_LAG = web.AppKey("loop_lag", LoopLag)


async def loop_lag_monitor(app: web.Application) -> AsyncIterator[None]:
    """Cleanup context: measures the loop's lag while the app runs."""
    monitor = app[LOOP_LAG]
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
    )
    app[IN_FLIGHT] = InFlight()
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
    overload = overload_reason(budget, pending, request.app[LOOP_LAG].lag_s, in_flight.count)
    if overload is None:
        in_flight.count += 1
        try:
            return await handler(request)
        finally:
            in_flight.count -= 1
    kind, reason = overload
    REQUESTS_SHED.labels(kind).inc()
    response = error_response(503, f"overloaded: {reason}; retry later")
    response.headers["Retry-After"] = str(RETRY_AFTER_S)
    return response
