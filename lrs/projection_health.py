"""Each projection's health: lag, parked and refused messages, whether it is
running, stopped, outdated or stalled, and its last error.

Two sources, so that every process tells the truth about every projection:

* PostgreSQL (:func:`read_health`): the log head, each checkpoint and when it
  last moved, and the parked events.  A projection whose checkpoint is behind
  the log and has not moved for ``stall_after_s`` seconds is ``stalled``,
  wherever it runs.
* this process's runners, which report here (``runner_started``,
  ``runner_stopped``, ``runner_outdated``, ``note_refused``, ``note_error``):
  whether they run, and the messages they refused since they started.

``/ready`` and ``/metrics`` read it (lrs.http.about, lrs.http.metrics); the
Prometheus series are ``lrs_projection_*``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from prometheus_client import Counter, Gauge

from lrs import metrics

# Lag and parked events share their series with the competency supervisor's report (lrs.metrics).
PROJECTION_LAG = metrics.PROJECTION_LAG_EVENTS
PROJECTION_PARKED = metrics.PROJECTION_PARKED
PROJECTION_REFUSED = Counter(
    "lrs_projection_refused_messages",
    "Messages refused because they do not match the event log (never applied; the event is read from PostgreSQL)",
    ("projection", "reason"),
)
PROJECTION_UP = Gauge(
    "lrs_projection_running", "1 while the projection runs in this process, 0 when stopped or outdated", ("projection",)
)
PROJECTION_OUTDATED = Gauge(
    "lrs_projection_outdated", "1 when the projection's state was built with other rules or frameworks", ("projection",)
)
PROJECTION_STALLED = Gauge(
    "lrs_projection_stalled", "1 when the projection is behind the log and its checkpoint has not moved lately", ("projection",)
)

DEFAULT_STALL_AFTER_S = 30.0

SELECT_HEALTH = """
SELECT c.name, c.position, extract(epoch FROM c.updated_at) AS updated_at,
       (SELECT count(*) FROM projection_parked p WHERE p.name = c.name) AS parked,
       (SELECT position FROM log_head WHERE singleton) AS log_head
FROM projection_checkpoints c ORDER BY c.name
"""


@dataclass(slots=True)
class RunnerState:
    """What a runner in this process reported."""

    running: bool = False
    outdated: str | None = None
    last_error: str | None = None
    last_error_at: float | None = None
    refused: dict[str, int] = field(default_factory=dict)  # reason -> messages


@dataclass(frozen=True, slots=True)
class ProjectionHealth:
    name: str
    state: str  # running | stopped | outdated | stalled | elsewhere (no runner in this process)
    checkpoint: int
    log_head: int
    lag: int
    parked: int
    refused: int
    last_error: str | None
    checkpoint_age_s: float

    @property
    def ok(self) -> bool:
        return self.state in ("running", "elsewhere")

    def as_dict(self) -> dict[str, Any]:
        return {
            "state": self.state, "ok": self.ok, "checkpoint": self.checkpoint, "log_head": self.log_head,
            "lag": self.lag, "parked": self.parked, "refused": self.refused, "last_error": self.last_error,
            "checkpoint_age_s": round(self.checkpoint_age_s, 1),
        }


_RUNNERS: dict[str, RunnerState] = {}


def runner_state(name: str) -> RunnerState:
    return _RUNNERS.setdefault(name, RunnerState())


def runner_started(name: str) -> None:
    state = runner_state(name)
    state.running, state.outdated = True, None
    PROJECTION_UP.labels(projection=name).set(1)
    PROJECTION_OUTDATED.labels(projection=name).set(0)


def runner_stopped(name: str, error: str | None = None) -> None:
    state = runner_state(name)
    state.running = False
    PROJECTION_UP.labels(projection=name).set(0)
    if error is not None:
        note_error(name, error)


def runner_outdated(name: str, message: str) -> None:
    runner_stopped(name, message)
    runner_state(name).outdated = message
    PROJECTION_OUTDATED.labels(projection=name).set(1)


def note_error(name: str, error: str) -> None:
    state = runner_state(name)
    state.last_error, state.last_error_at = error, time.time()


def note_refused(name: str, reason: str) -> None:
    state = runner_state(name)
    state.refused[reason] = state.refused.get(reason, 0) + 1
    PROJECTION_REFUSED.labels(projection=name, reason=reason).inc()


def forget_runners() -> None:
    """Tests: start from no runner."""
    _RUNNERS.clear()


async def read_health(pool: asyncpg.Pool, *, stall_after_s: float = DEFAULT_STALL_AFTER_S) -> list[ProjectionHealth]:
    """Every projection with a checkpoint, and its health; updates the gauges."""
    try:
        rows = await pool.fetch(SELECT_HEALTH)
    except asyncpg.UndefinedTableError:  # no projection was ever migrated here
        rows = []
    now = time.time()
    result = []
    for row in rows:
        name = row["name"]
        lag = max(0, int(row["log_head"] or 0) - int(row["position"]))
        age = max(0.0, now - float(row["updated_at"]))
        runner = _RUNNERS.get(name)
        if runner is not None and runner.outdated:
            state = "outdated"
        elif runner is not None and not runner.running:
            state = "stopped"
        elif lag > 0 and age > stall_after_s:
            state = "stalled"
        else:
            state = "running" if runner is not None else "elsewhere"
        health = ProjectionHealth(
            name=name, state=state, checkpoint=int(row["position"]), log_head=int(row["log_head"] or 0), lag=lag,
            parked=int(row["parked"]), refused=sum(runner.refused.values()) if runner else 0,
            last_error=runner.last_error if runner else None, checkpoint_age_s=age,
        )
        PROJECTION_LAG.labels(projection=name).set(lag)
        PROJECTION_PARKED.labels(projection=name).set(health.parked)
        PROJECTION_STALLED.labels(projection=name).set(1 if state == "stalled" else 0)
        result.append(health)
    return result
