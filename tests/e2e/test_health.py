"""/ready and /metrics tell the truth within seconds: a stopped projection,
its lag, and a relay that cannot reach NATS."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from jsonschema import Draft202012Validator

from lrs import projection_health
from lrs.config import Settings
from lrs.http.openapi import served_document
from lrs.service import create_app
from projections.http_requests import SUPERVISOR
from tests.e2e.conftest import KEY, SECRET, xapi_headers
from tests.statements import new_id
from tests.statements import statement as shared_statement

pytestmark = pytest.mark.slow


def statement() -> dict[str, Any]:
    return shared_statement(
        statement_id=new_id(), mbox="mailto:health@example.gov.vn",
        activity="https://lrs.example.org/courses/civil-servant-basic-digital-skills/modules/searching",
    )


def metric(text: str, name: str, **labels: str) -> float | None:
    selector = ",".join(f'{k}="{v}"' for k, v in labels.items())
    match = re.search(rf"^{name}{{{re.escape(selector)}}} (\S+)$", text, re.M)
    return float(match.group(1)) if match else None


def documented_readiness(body: dict[str, Any]) -> None:
    """Raises unless ``body`` is what the OpenAPI document says /ready answers."""
    schema = {**served_document(), "$ref": "#/components/schemas/Readiness"}
    Draft202012Validator(schema).validate(body)


async def until(check, seconds: float) -> float:
    started = time.monotonic()
    while not await check():
        assert time.monotonic() - started < seconds, "not within the time allowed"
        await asyncio.sleep(0.1)
    return time.monotonic() - started


async def test_a_stopped_projection_and_a_stuck_relay_show_on_ready_and_metrics(
    database_url: str, nats_control: Any, tmp_path: Path
) -> None:
    projection_health.forget_runners()
    settings = Settings(
        database_url=database_url, nats_url=nats_control.url, data_dir=tmp_path,
        frameworks_dir=tmp_path / "frameworks", bootstrap_credential=f"{KEY}:{SECRET}",
    )
    app = create_app(settings, database_url=database_url, nats_url=nats_control.url)
    async with TestServer(app) as server, TestClient(server) as client:

        async def ready() -> dict[str, Any]:
            async with client.get("/ready") as response:
                assert response.status == 200
                return await response.json()

        async def metrics() -> str:
            async with client.get("/metrics", headers=xapi_headers()) as response:
                assert response.status == 200
                return await response.text()

        async def post() -> None:
            async with client.post("/xapi/statements", json=statement(), headers=xapi_headers()) as response:
                assert response.status == 200

        await post()

        async def caught_up() -> bool:
            body = await ready()
            competency = body["checks"].get("projection_health", {}).get("competency")
            return competency is not None and competency["state"] == "running" and competency["lag"] == 0

        await until(caught_up, 30)
        assert (await ready())["status"] == "ready"

        # Stop the projection: both endpoints say so at once.
        await app[SUPERVISOR].close()
        await post()
        body = await ready()
        competency = body["checks"]["projection_health"]["competency"]
        assert competency["state"] == "stopped" and competency["lag"] == 1 and not competency["ok"]
        assert body["status"] == "degraded" and "projection competency stopped" in body["degraded"]
        documented_readiness(body)
        async with client.get("/ready?strict=true") as response:
            assert response.status == 503
        text = await metrics()
        assert metric(text, "lrs_projection_running", projection="competency") == 0
        assert metric(text, "lrs_projection_lag_events", projection="competency") == 1
        assert metric(text, "lrs_projection_parked_events", projection="competency") == 0

        # NATS gone: the relay's lag grows and shows within seconds.
        nats_control.kill()
        await post()

        async def relay_behind() -> bool:
            relay = (await ready())["checks"]["relay"]
            return relay["nats"] == "disconnected" and relay["lag"] >= 1

        assert await until(relay_behind, 15) < 15
        body = await ready()
        assert body["status"] == "degraded" and "relay" in body["degraded"], body
        async with client.get("/ready?strict=true") as response:
            assert response.status == 503
        assert metric(await metrics(), "lrs_relay_lag_events", relay="jetstream") >= 1


async def test_an_anchor_refused_over_a_rewritten_log_shows_on_ready_and_metrics(
    database_url: str, nats_control: Any, tmp_path: Path
) -> None:
    from lrs.anchors import read_anchors
    from tests.integration.test_anchors import rewrite_history

    projection_health.forget_runners()
    settings = Settings(
        database_url=database_url, nats_url=nats_control.url, data_dir=tmp_path,
        frameworks_dir=tmp_path / "frameworks", bootstrap_credential=f"{KEY}:{SECRET}",
        projections_enabled=False, anchor_every_events=5, anchor_every_s=0.2,
    )
    anchors_file = tmp_path / "anchors.jsonl"
    app = create_app(settings, database_url=database_url, nats_url=nats_control.url)
    async with TestServer(app) as server, TestClient(server) as client:

        async def ready() -> dict[str, Any]:
            async with client.get("/ready") as response:
                return await response.json()

        async def post(count: int) -> None:
            body = [statement() for _ in range(count)]
            async with client.post("/xapi/statements", json=body, headers=xapi_headers()) as response:
                assert response.status == 200

        await post(10)

        async def anchored_head() -> bool:
            return anchors_file.exists() and any(a.position == 10 for a in read_anchors(anchors_file))

        await until(anchored_head, 30)
        assert (await ready())["checks"]["anchors"] == {"anchored_position": 10, "verified_position": 10,
                                                        "refused": None}
        await rewrite_history(database_url, 4)  # every later hash and the head recomputed
        await post(5)

        async def refused() -> bool:
            return (await ready())["checks"]["anchors"]["refused"] is not None

        await until(refused, 30)
        body = await ready()
        assert body["status"] == "degraded" and "anchors refused" in body["degraded"]
        assert "position 11" in body["checks"]["anchors"]["refused"]
        async with client.get("/ready?strict=true") as response:
            assert response.status == 503
        async with client.get("/metrics", headers=xapi_headers()) as response:
            text = await response.text()
        assert re.search(r"^lrs_anchor_refused 1\.0$", text, re.M)
        assert max(a.position for a in read_anchors(anchors_file)) == 10
