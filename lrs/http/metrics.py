"""Prometheus metrics of the HTTP layer and the ``/metrics`` endpoint."""

from __future__ import annotations

import asyncio
import contextlib

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Gauge, Histogram, generate_latest

from lrs import projection_health
from lrs.http import keys
from lrs.store.log_reader import last_position

log = structlog.get_logger("lrs.http.metrics")

HTTP_REQUESTS = Counter(
    "lrs_http_requests_total", "HTTP requests answered", ("method", "route", "status")
)
HTTP_LATENCY = Histogram(
    "lrs_http_request_duration_seconds",
    "Time from request received to response ready",
    ("method", "route"),
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
STATEMENTS_ACCEPTED = Counter(
    "lrs_statements_accepted_total", "Statements committed to the event log", ("tenant",)
)


def labelled(metric):  # type: ignore[no-untyped-def]
    """``metric.labels`` remembered per label values: ``labels`` takes a lock
    and checks its arguments on every call, which every request paid twice.
    The child is the one ``labels`` returns (prometheus_client keeps one per
    label values), so what is exported is the same."""
    children: dict[tuple[str, ...], object] = {}

    def child(*values: str):  # type: ignore[no-untyped-def]
        found = children.get(values)
        if found is None:
            found = children[values] = metric.labels(*values)
        return found

    return child


STATEMENTS_REJECTED = Counter(
    "lrs_statements_rejected_requests_total", "Statement write requests rejected", ("status",)
)

SHED = Counter(
    "lrs_shed",
    "Requests refused with 503 because the service was behind, by reason (limit, in_flight, queue, loop)",
    ("reason",),
)
SHED_LIMIT = Gauge(
    "lrs_shed_concurrency_limit",
    "Requests this process serves at once before it refuses more (the adaptive limit; LRS_SHED_LATENCY_MS)",
)
HTTP_REQUESTS_BY = labelled(HTTP_REQUESTS)
HTTP_LATENCY_BY = labelled(HTTP_LATENCY)
STATEMENTS_ACCEPTED_BY = labelled(STATEMENTS_ACCEPTED)
EVENT_LOOP_LAG = Histogram(
    "lrs_event_loop_lag_seconds",
    "How late the event loop ran a timer due every 25 ms (what LRS_SHED_LOOP_LAG_MS is compared with)",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5),
)
AUTH_THROTTLED = Counter(
    "lrs_auth_throttled_total", "Authentication attempts refused with 429 after repeated failures"
)


async def metrics_handler(request: web.Request) -> web.Response:
    pool = request.app.get(keys.POOL)
    if pool is not None:
        try:  # the projections' gauges, as PostgreSQL has them now
            async with asyncio.timeout(2):
                await projection_health.read_health(pool)
        except Exception as exc:  # noqa: BLE001 - the rest of the metrics still count
            log.warning("metrics.projection_health_failed", error=repr(exc))
    relay = request.app.get(keys.RELAY)
    if relay is not None and relay.is_leader:
        # The relay's lag as of this scrape: the log head as PostgreSQL has it
        # now against the last position the stream acknowledged, whether or
        # not the relay's own loop is running (it is not while a publish or
        # a reconnection hangs).  A standby publishes nothing and sets no
        # gauges; the leading process's /metrics tells its lag.
        head = None
        if pool is not None:
            try:
                async with asyncio.timeout(2):
                    head = await last_position(pool)
            except Exception as exc:  # noqa: BLE001 - the head this process saw still counts
                log.warning("metrics.log_head_failed", error=repr(exc))
        relay.observe_head(head)
    projections = request.app.get(keys.PROJECTIONS_STATUS)
    if projections is not None:
        with contextlib.suppress(Exception):  # metrics never fail for want of the database
            await projections(request.app)  # sets the lrs_projection_* gauges
    body = generate_latest(REGISTRY)
    response = web.Response(body=body)
    response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
    response.charset = "utf-8"
    return response
