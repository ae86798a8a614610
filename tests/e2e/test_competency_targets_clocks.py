"""A dated target schedule and the two clocks, through HTTP: summaries give the
target in force and the next one; the series counts by statement timestamps
(achieved) or by stored times with the roster as then known (known)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path


from aiohttp.test_utils import TestClient, TestServer

from lrs.config import Settings
from lrs.service import create_app
from projections.competency.catalog import FRAMEWORKS_DIR
from tests.e2e.conftest import KEY, SECRET, xapi_headers
from tests.e2e.test_competency_api import CERTIFYING, PROGRAM, caught_up, get_json, post, roster
from tests.e2e.test_console import sign_in
from tests.integration.competency_statements import course_statement


def scheduled_programme(directory: Path) -> None:
    body = json.loads((FRAMEWORKS_DIR / "civil-servant-basic-digital-skills.program.json").read_text(encoding="utf-8"))
    body.pop("target_rate")
    body["targets"] = [
        {"rate": 0.4, "by": "2025-03-31"}, {"rate": 1.0, "by": "2025-12-31"},
        {"rate": 0.5, "by": "2025-03-31", "unit": "mic-dt-2"},
    ]
    directory.mkdir()
    (directory / "programme-with-schedule.json").write_text(json.dumps(body), encoding="utf-8")


async def test_a_dated_schedule_and_both_clocks(database_url: str, tmp_path: Path) -> None:
    installed = tmp_path / "frameworks"
    scheduled_programme(installed)
    settings = Settings(database_url=database_url, nats_url=None, relay_enabled=False,
                        bootstrap_credential=f"{KEY}:{SECRET}", frameworks_dir=installed)
    app = create_app(settings, database_url=database_url, nats_url=None)
    async with TestServer(app) as server, TestClient(server) as client:
        response = await client.post("/competency/admin/roster", json=roster({"mic-dt-1": [1, 2], "mic-dt-2": [3]}),
                                     headers=xapi_headers())
        assert response.status == 200, await response.text()
        # learner 1 earns it on 2025-03-01 (statement timestamps); the LRS stores it now
        await post(client, *(course_statement(1, m, v, i) for i, (m, v) in enumerate(CERTIFYING)))
        now = await caught_up(client, database_url)
        assert (now["headcount"], now["certified"]) == (3, 1)
        assert now["target"]["rate"] == 1.0 and now["target"]["overdue"] is True and now["next_target"] is None
        assert (now["target"]["needed"], now["target"]["gap"]) == (3, 2)
        own = await get_json(client, "/competency/units/mic-dt-2/summary", program=PROGRAM)
        assert (own["target"]["rate"], own["target"]["source"]) == (0.5, "unit:mic-dt-2")

        # The console's unit page writes the due date as the page's language writes dates.
        assert (await sign_in(client)).status == 303
        for language, due in (("vi", "31/12/2025"), ("en", "31 Dec 2025")):
            page = await client.get("/console/units/mic", params={"program": PROGRAM},
                                    headers={"Accept-Language": language})
            assert page.status == 200, await page.text()
            assert f'<time datetime="2025-12-31">{due}</time>' in await page.text(), language

        march = await get_json(client, "/competency/units/mic/summary", program=PROGRAM, as_of="2025-03-15T00:00:00Z")
        assert (march["clock"], march["headcount"], march["certified"]) == ("achieved", 3, 1)
        assert (march["target"]["rate"], march["target"]["due"], march["target"]["overdue"]) == (0.4, "2025-03-31", False)
        assert (march["next_target"]["rate"], march["next_target"]["due"]) == (1.0, "2025-12-31")
        known = await get_json(client, "/competency/units/mic/summary", program=PROGRAM, as_of="2025-03-15T00:00:00Z",
                               clock="known")
        assert (known["headcount"], known["certified"]) == (0, 0)  # nothing was stored or rostered then

        achieved = await get_json(client, "/competency/units/mic/series", program=PROGRAM,
                                  **{"from": "2025-01-01", "to": "2025-05-31", "interval": "month"})
        assert [(p["period"], p["headcount"], p["certified"]) for p in achieved["points"]] == [
            ("2025-01", 3, 0), ("2025-02", 3, 0), ("2025-03", 3, 1), ("2025-04", 3, 1), ("2025-05", 3, 1)]
        assert [p["target"]["rate"] for p in achieved["points"]] == [0.4, 0.4, 0.4, 1.0, 1.0]
        assert achieved["points"][2]["rate"] == 1 / 3 and achieved["points"][2]["target"]["gap"] == 1

        today = datetime.now(timezone.utc).date()
        week_ago = today - timedelta(days=7)
        by_stored = await get_json(client, "/competency/units/mic/series", program=PROGRAM, clock="known",
                                   **{"from": week_ago.isoformat(), "to": today.isoformat(), "interval": "day"})
        points = by_stored["points"]
        assert len(points) == 8 and by_stored["clock"] == "known"
        assert (points[0]["headcount"], points[0]["certified"]) == (0, 0)  # before the roster was loaded
        assert (points[-1]["headcount"], points[-1]["certified"]) == (3, 1)  # today, as now known
        old = await get_json(client, "/competency/units/mic/series", program=PROGRAM, clock="known",
                             **{"from": "2025-01-01", "to": "2025-05-31"})
        assert {(p["headcount"], p["certified"]) for p in old["points"]} == {(0, 0)}

        for params, path in (({"from": "2025-05-01", "to": "2025-01-01"}, "to"), ({"from": "2025-01-01"}, "to"),
                             ({"from": "2025-01-01", "to": "2025-02-01", "clock": "wall"}, "clock"),
                             ({"from": "2015-01-01", "to": "2025-02-01", "interval": "day"}, "to")):
            bad = await get_json(client, "/competency/units/mic/series", status=400, program=PROGRAM, **params)
            assert bad["path"] == path, bad
        await get_json(client, "/competency/units/nowhere/series", status=404, program=PROGRAM,
                       **{"from": "2025-01-01", "to": "2025-02-01"})


