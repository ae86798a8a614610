"""The /competency/... JSON API and the projection runner inside ``lrs serve``.

Reading needs a credential with scope ``all/read`` (or ``all``); the admin
resources under /competency/admin/ need ``all``.  Every answer is for the
credential's tenant only and carries ``position``, the log position it
reflects (also sent as the ``X-LRS-Position`` header).

A learner is named in the path by the canonical key of the actor's inverse
functional identifier (:func:`lrs.xapi.identity.ifi_key`), percent-encoded
as one path segment (``urllib.parse.quote(key, safe="")``,
``encodeURIComponent(key)``): ``mbox:mailto:a@example.org`` is
``mbox%3Amailto%3Aa%40example.org``;
``account:https://sso.example.gov.vn|0123`` is
``account%3Ahttps%3A%2F%2Fsso.example.gov.vn%7C0123``.

The handlers: :mod:`projections.http_queries` (the query API, and what the
console shares of it), :mod:`projections.http_admin` (/competency/admin/);
what both read of a request and how they answer, :mod:`projections.http_requests`.
"""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator, Callable

import structlog
from aiohttp import web

from lrs.http import keys
from projections.competency.catalog import Catalog, load_live_catalog
from projections.competency.frameworks import FrameworkError
from projections.contract import Projection
from projections.freshness_reasons import Reason, reason_json
from projections.http_admin import get_memberships, get_units, post_identities, post_roster
from projections.http_queries import (
    get_learner, get_mastery_mismatches, get_trail, get_unit_learners, get_unit_report, get_unit_series,
    get_unit_summary, get_unit_tree,
)
from projections.http_requests import CATALOG, FRAMEWORKS_PROBLEM, OBSERVED, SUPERVISOR
from projections.supervisor import ObservedProjection, Supervisor, observed_freshness

__all__ = ["BUILD_PROJECTION", "register", "competency_app"]

log = structlog.get_logger("lrs.projections")

# The competency projection for a catalog, as the composition root builds it.
BUILD_PROJECTION: web.AppKey[Callable[[Catalog], Projection]] = web.AppKey("competency_build_projection")
PREFIX = "/competency"


def register(app: web.Application, build_projection: Callable[[Catalog], Projection]) -> None:
    """Mount /competency on the service (a sub-application of its own), and
    run the projection with it: the catalogue, the projection's status (for
    /ready and /metrics) and the runner are the service's, so the console and
    /ready read them too, and the runner stops before the pool it writes
    with closes (a sub-application's cleanup would run after the service's).
    ``build_projection``: the projection for a catalog, from the composition
    root (lrs.service.competency_projection)."""
    try:
        app[CATALOG] = load_live_catalog(app[keys.SETTINGS].installed_frameworks_dir)
    except FrameworkError as exc:
        # xAPI ingest goes on; /competency answers 503 and the projection
        # waits until the documents are fixed and the service restarted.
        app[FRAMEWORKS_PROBLEM] = str(exc)
        log.error("competency.frameworks_invalid", error=str(exc), alert=True)
    app[BUILD_PROJECTION] = build_projection
    app.cleanup_ctx.append(_projection_runner)  # last: it needs the pool, the writer and the relay
    app[keys.PROJECTIONS_STATUS] = projections_status
    app.add_subapp(PREFIX, competency_app())


def competency_app() -> web.Application:
    """The /competency/... routes; handlers read the service's keys through
    ``request.config_dict``."""
    competency = web.Application()
    competency.router.add_get("/learners/{learner}", get_learner)
    competency.router.add_get("/learners/{learner}/trail", get_trail)
    competency.router.add_get("/units", get_unit_tree)
    competency.router.add_get("/units/{unit}/summary", get_unit_summary)
    competency.router.add_get("/units/{unit}/learners", get_unit_learners)
    competency.router.add_get("/units/{unit}/report", get_unit_report)
    competency.router.add_get("/units/{unit}/series", get_unit_series)
    competency.router.add_get("/mastery-mismatches", get_mastery_mismatches)
    competency.router.add_post("/admin/roster", post_roster)
    competency.router.add_get("/admin/units", get_units)
    competency.router.add_post("/admin/identities", post_identities)
    competency.router.add_get("/admin/memberships", get_memberships)
    return competency


# -- /ready and /metrics ---------------------------------------------------------------


async def projections_status(app: web.Application) -> dict[str, Any]:
    """The competency projection's state, lag and parked count (also set as
    the lrs_projection_* gauges)."""
    from lrs import metrics
    from projections.runner import parked_count

    watcher = app.get(SUPERVISOR) or app.get(OBSERVED)
    pool = app[keys.POOL]
    if watcher is not None:
        fresh = await watcher.freshness()
    elif CATALOG in app:
        fresh = await observed_freshness(pool, app[CATALOG], app[keys.SETTINGS].competency_stale_after_s)
    else:
        fresh = None
    parked = await parked_count(pool, "competency")
    state = "stopped" if fresh is None else fresh.state
    for known in metrics.PROJECTION_STATES:
        metrics.PROJECTION_STATE.labels("competency", known).set(1 if known == state else 0)
    status: dict[str, Any] = {"state": state, "parked": parked}
    if fresh is not None:
        status.update(
            reason_json(fresh.why), position=fresh.position, log_head=fresh.log_head,
            lag_events=max(fresh.log_head - fresh.position, 0), lag_s=round(fresh.age_s, 1),
        )
        metrics.PROJECTION_LAG_EVENTS.labels("competency").set(status["lag_events"])
        metrics.PROJECTION_LAG_SECONDS.labels("competency").set(fresh.age_s)
    else:
        status.update(Reason.of("frameworks_unreadable", error=str(app.get(FRAMEWORKS_PROBLEM))).json())
    metrics.PROJECTION_PARKED.labels("competency").set(parked)
    return {"competency": status}


# -- the runner inside `lrs serve` ---------------------------------------------------


async def _projection_runner(app: web.Application) -> AsyncIterator[None]:
    """Runs the competency projection while the service runs (supervisor.py):
    from JetStream when a NATS URL is configured, else straight from the
    Postgres log."""
    settings = app[keys.SETTINGS]
    if not settings.projections_enabled:
        log.info("projections disabled", reason="LRS_PROJECTIONS_ENABLED=false")
        if CATALOG in app:  # run elsewhere: watched through the log and the checkpoint
            app[OBSERVED] = ObservedProjection(
                app[keys.POOL], app[CATALOG], frameworks_dir=settings.installed_frameworks_dir,
                stale_after_s=settings.competency_stale_after_s, poll_s=settings.frameworks_poll_s,
            )
        yield
        return
    if CATALOG not in app:
        log.error("projection.not_started", reason="the competency frameworks cannot be read", alert=True)
        yield
        return
    nats_url = app.get(keys.NATS_URL)
    wake = asyncio.Event()
    if nats_url is None:
        app[keys.WRITER].committed.append(lambda position: wake.set())
    supervisor = Supervisor(
        app[keys.POOL], app[CATALOG], frameworks_dir=settings.installed_frameworks_dir, nats_url=nats_url, wake=wake,
        stale_after_s=settings.competency_stale_after_s, poll_s=settings.frameworks_poll_s,
        auto_rebuild=settings.competency_auto_rebuild, build_projection=app[BUILD_PROJECTION],
    )
    supervisor.start()
    app[SUPERVISOR] = supervisor
    try:
        yield
    finally:
        await supervisor.close()
