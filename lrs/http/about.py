"""``/xapi/about`` and the operational probes ``/health`` and ``/ready``."""

from __future__ import annotations

import asyncio

from aiohttp import web

from lrs import projection_health
from lrs.http import keys

XAPI_VERSIONS = ["1.0.3", "2.0.0"]


async def about(request: web.Request) -> web.Response:
    return web.json_response({"version": XAPI_VERSIONS})


async def health(request: web.Request) -> web.Response:
    """Liveness: the process answers."""
    return web.json_response({"status": "ok"})


def relay_degraded(status: dict[str, object]) -> bool:
    """The relay is behind for a reason: its last publish or resync failed,
    its task ended, or NATS is unreachable while events wait.  (Without the
    last two a relay that could not reach NATS answered ``ready`` with
    ``?strict=true``: a disconnected client attempts no publish, so it had no
    error to report.)"""
    if status.get("last_error") or status.get("running") is False:
        return True
    lag = status.get("lag")
    return status.get("nats") == "disconnected" and isinstance(lag, int) and lag > 0


async def ready(request: web.Request) -> web.Response:
    """Readiness: accepting work, the system of record answers, and no
    embedded server is being restarted.

    A configured NATS is reported but does not make the service unready:
    ingest never depends on it (the relay catches up later).  An embedded
    server that died and is being restarted does: the process is not whole;
    so does a statement writer whose task is being started again.
    The relay and the projections are reported too; the answer's ``status``
    is ``degraded`` when the relay has an error, has stopped, or cannot
    reach NATS while events wait, when a projection is stopped,
    outdated or stalled, or when the anchor writer refuses to sign a log
    that does not hold, and with ``?strict=true`` that is a 503 too (for a
    monitor rather than a load balancer).
    """
    checks: dict[str, object] = {"accepting": request.app[keys.LIFECYCLE].accepting}
    embedded = request.app.get(keys.EMBEDDED)
    servers = embedded() if embedded is not None else {}
    if servers:
        checks["embedded"] = servers
    try:
        async with asyncio.timeout(2):
            await request.app[keys.POOL].fetchval("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready"
        checks["database"] = f"unavailable: {type(exc).__name__}"
    writer = request.app.get(keys.WRITER)
    if writer is not None:
        checks["statement_writer"] = writer.status()
    degraded: list[str] = []
    relay = request.app.get(keys.RELAY)
    if relay is not None:
        status = relay.status()
        checks["relay"] = status
        if relay_degraded(status):
            degraded.append("relay")
    anchoring = request.app.get(keys.ANCHOR_WRITER)
    if anchoring is not None:
        checks["anchors"] = anchoring.status()
        if anchoring.refused is not None:
            degraded.append("anchors refused")
    if checks["database"] == "ok":
        try:
            async with asyncio.timeout(2):
                health = await projection_health.read_health(request.app[keys.POOL])
        except Exception as exc:  # noqa: BLE001 - reported, not fatal
            checks["projection_health"] = f"unavailable: {type(exc).__name__}"
        else:
            checks["projection_health"] = {p.name: p.as_dict() for p in health}
            degraded.extend(f"projection {p.name} {p.state}" for p in health if not p.ok)
    projections = request.app.get(keys.PROJECTIONS_STATUS)
    if projections is not None and checks["database"] == "ok":
        # Reported, like NATS: ingest never waits for a projection; a
        # projection that is not current refuses its own answers (503).
        checks["projections"] = await projections(request.app)
    ok = checks["accepting"] is True and checks["database"] == "ok"
    ok = ok and all(state == "running" for state in servers.values())
    ok = ok and (writer is None or writer.running)
    strict = request.query.get("strict", "").lower() in ("1", "true", "yes")
    status_text = "unavailable" if not ok else "degraded" if degraded else "ready"
    healthy = ok and not (strict and degraded)
    return web.json_response(
        {"status": status_text, "degraded": degraded, "checks": checks}, status=200 if healthy else 503
    )
