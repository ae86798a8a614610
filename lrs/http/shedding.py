"""Load shedding: refuse new work at once when the service has fallen behind.

Under more load than the machine can carry, queueing every request makes
every request slow (at 2,048 connections each waited seconds).  Instead, a
*new* request is answered 503 with ``Retry-After`` before anything of it is
read or checked (its body, its credentials: the slow hash never runs) while

* the process already serves as many requests as its adaptive limit allows
  (:class:`lrs.http.concurrency_limit.AdaptiveLimit`: the limit follows the
  latency of the requests it admits, plus the event loop's lag, towards
  ``LRS_SHED_LATENCY_MS``; ``LRS_SHED_MIN_IN_FLIGHT`` are always admitted), or
* ``LRS_SHED_MAX_IN_FLIGHT`` requests are being served (a fixed cap, off by
  default), or
* more than ``LRS_SHED_QUEUE_STATEMENTS`` statements wait for group commit
  (accepted, not yet committed), or
* the event loop runs more than ``LRS_SHED_LOOP_LAG_MS`` late, tick after
  tick (measured by a timer that should fire every ``interval_s``).

``Retry-After`` spreads the refused clients' returns over a number of
seconds (drawn at random per response, :func:`retry_after_s`) that grows
while more clients are refused than half the number served (1 to 30 s,
:class:`AdaptiveLimit`): with 2,000 clients refused every second by a
process that serves a few hundred, answering them all again a second later
would cost the process more than it can spare.  Requests already accepted
are not touched and finish normally.  The operational probes and metrics are
never shed.  This is the outermost middleware: a refusal costs no log line,
only a counter (``lrs_shed_total{reason}``).
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections import deque
from dataclasses import dataclass
from typing import AsyncIterator, Callable

from aiohttp import web

from lrs.http import keys
from lrs.http.concurrency_limit import AdaptiveLimit
from lrs.http.metrics import EVENT_LOOP_LAG, SHED, SHED_LIMIT
from lrs.http.middleware import Handler, error_response
from lrs.tasks import cancel_and_wait

__all__ = ["Admission", "LoopLag", "SheddingBudget", "load_shedding", "overload_reason", "retry_after_s"]

NEVER_SHED = frozenset({"/health", "/ready", "/metrics"})
RETRY_AFTER_S = 1


@dataclass(frozen=True, slots=True)
class SheddingBudget:
    """0 turns a check off."""

    queue_statements: int
    loop_lag_s: float
    max_in_flight: int = 0


def overload_reason(
    budget: SheddingBudget, pending_statements: int, loop_lag_s: float, in_flight: int = 0,
) -> tuple[str, str] | None:
    """Which fixed budget is exceeded ("in_flight", "queue" or "loop") and how, or None (pure)."""
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


def limit_reason(limit: AdaptiveLimit) -> str:
    latency = "" if limit.latency_s is None else f", lately {limit.latency_s * 1000:.0f} ms"
    return (
        f"{limit.in_flight} requests are being served, the most that answer within "
        f"LRS_SHED_LATENCY_MS={limit.target_s * 1000:g}{latency}"
    )


def retry_after_s(spread_s: float, draw: float) -> int:
    """Seconds a refused client should wait (pure; ``draw`` uniform in [0, 1)):
    uniform over 1..``spread_s`` whole seconds, so that refused clients do not
    all come back at once (:attr:`AdaptiveLimit.retry_spread_s`)."""
    whole = max(1, int(spread_s))
    return 1 + min(whole - 1, int(draw * whole))


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
        self._loop_time: Callable[[], float] | None = None
        self.on_tick: Callable[[float], None] | None = None

    def now(self) -> float:
        """The clock given, else the running loop's time (the loop that
        ``run`` runs in is looked up once: ``get_running_loop`` makes a
        getpid system call, and this is asked on every request)."""
        if self._clock is not None:
            return self._clock()
        if self._loop_time is not None:
            return self._loop_time()
        return asyncio.get_running_loop().time()

    @property
    def lag_s(self) -> float:
        recent = self._recent
        if self._due is not None:
            overdue = self.now() - self._due
            if overdue > 0:
                return min(min(itertools.islice(recent, 1, None), default=overdue), overdue)
        return min(recent)

    def tick(self, expected: float, now: float) -> None:
        """Record a timer due at ``expected`` that ran at ``now``."""
        late = max(0.0, now - expected)
        self._recent.append(late)
        EVENT_LOOP_LAG.observe(late)

    async def run(self) -> None:
        self._loop_time = asyncio.get_running_loop().time
        try:
            await self._ticks()
        finally:
            self._loop_time = None

    async def _ticks(self) -> None:
        while True:
            self._due = self.now() + self.interval_s
            await asyncio.sleep(self.interval_s)
            due, self._due = self._due, None
            now = self.now()
            self.tick(due, now)
            if self.on_tick is not None:
                self.on_tick(now)


class Admission:
    """What the middleware consults: the fixed budgets, the adaptive limit
    (None: off) and the loop's lag; counts the requests in flight."""

    def __init__(self, budget: SheddingBudget, limit: AdaptiveLimit | None, loop_lag: LoopLag) -> None:
        self.budget = budget
        self.limit = limit
        self.loop_lag = loop_lag
        self.in_flight = 0
        if limit is not None:
            SHED_LIMIT.set(limit.limit)

    def tick(self, now: float) -> None:
        if self.limit is not None and self.limit.tick(now, self.loop_lag.lag_s):
            SHED_LIMIT.set(self.limit.limit)


ADMISSION = web.AppKey("admission", Admission)


async def loop_lag_monitor(app: web.Application) -> AsyncIterator[None]:
    """Cleanup context: measures the loop's lag (and closes the limit's windows, on the same ticks)."""
    admission = app[ADMISSION]
    admission.loop_lag.on_tick = admission.tick
    task = asyncio.create_task(admission.loop_lag.run(), name="lrs-loop-lag")
    try:
        yield
    finally:
        await cancel_and_wait(task)


def install(app: web.Application, settings: object) -> None:
    """Keeps the budgets, the adaptive limit and the lag monitor on ``app`` (the middleware reads them)."""
    budget = SheddingBudget(
        queue_statements=getattr(settings, "shed_queue_statements"),
        loop_lag_s=getattr(settings, "shed_loop_lag_ms") / 1000.0,
        max_in_flight=getattr(settings, "shed_max_in_flight"),
    )
    target_s = getattr(settings, "shed_latency_ms") / 1000.0
    limit = None
    if target_s > 0:
        limit = AdaptiveLimit(target_s, min_limit=getattr(settings, "shed_min_in_flight"))
    app[ADMISSION] = Admission(budget, limit, LoopLag())
    app.cleanup_ctx.append(loop_lag_monitor)


def _refuse(admission: Admission, reason: str, message: str) -> web.Response:
    SHED.labels(reason).inc()
    limit = admission.limit
    response = error_response(503, f"overloaded: {message}; retry later")
    if limit is None:
        response.headers["Retry-After"] = str(RETRY_AFTER_S)
    else:
        response.headers["Retry-After"] = str(retry_after_s(limit.retry_spread_s, random.random()))
    return response


@web.middleware
async def load_shedding(request: web.Request, handler: Handler) -> web.StreamResponse:
    admission = request.app.get(ADMISSION)
    if admission is None or request.path in NEVER_SHED:
        return await handler(request)
    writer = request.app.get(keys.WRITER)
    pending = writer.pending_statements if writer is not None else 0
    overload = overload_reason(admission.budget, pending, admission.loop_lag.lag_s, admission.in_flight)
    limit = admission.limit
    if overload is not None:
        if limit is not None:
            limit.refused()
        return _refuse(admission, *overload)
    if limit is not None and not limit.try_acquire():
        return _refuse(admission, "limit", limit_reason(limit))
    clock = admission.loop_lag.now
    started = clock()
    admission.in_flight += 1
    try:
        return await handler(request)
    finally:
        admission.in_flight -= 1
        if limit is not None:
            limit.release(started, clock())
