"""The operators' page across processes: a parked event's retry asked on a
console whose service does not run the projection is carried out by the
projection's runner in another process (``lrs serve``); the audit status
shows what ``lrs audit verify`` and ``lrs audit anchor`` (other processes) did."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient, TestServer

from lrs.service import create_app
from tests.e2e.conftest import xapi_headers
from tests.e2e.statements import statement
from tests.e2e.test_console import add_credential, console, form_token, settings_for, sign_in  # noqa: F401

REQUEST_ROW = re.compile(r'<tr data-request="(\d+)" data-state="(\w+)">')


async def _park_head(database_url: str) -> int:
    """Park the newest event by hand, as the runner does after repeated failures
    (applying it again is harmless: evidence is keyed by statement id)."""
    conn = await asyncpg.connect(database_url)
    try:
        head = await conn.fetchval("SELECT position FROM log_head")
        await conn.execute(
            "INSERT INTO projection_parked (name, position, tenant, attempts, error) "
            "VALUES ('competency', $1, 'default', 5, 'ValueError(''simulated'')')", head,
        )
        return int(head)
    finally:
        await conn.close()


async def _states(client: TestClient) -> dict[str, str]:
    page = await client.get("/console/operations")
    assert page.status == 200
    return dict(REQUEST_ROW.findall(await page.text()))


async def test_a_retry_asked_where_the_projection_does_not_run_is_done_by_its_runner(
    database_url: str, tmp_path: Path, service_factory: Any
) -> None:
    settings = settings_for(database_url, tmp_path, projections_enabled=False)
    console_app = create_app(settings, database_url=database_url, nats_url=None)
    async with TestServer(console_app) as server, TestClient(server) as console:
        posted = await console.post("/xapi/statements", headers=xapi_headers(), json=statement())
        assert posted.status == 200
        position = await _park_head(database_url)
        await sign_in(console)
        page = await console.get("/console/operations")
        html = await page.text()
        assert f'data-position="{position}"' in html and "/retry" in html

        # Asked with no runner anywhere: recorded, and the page says so (and refreshes itself).
        asked = await console.post(
            f"/console/operations/parked/{position}/retry", data={"csrf": form_token(html)}, allow_redirects=False
        )
        assert asked.status == 303 and "requested=" in asked.headers["Location"]
        page = await (await console.get(asked.headers["Location"])).text()
        assert asked.headers["Location"].endswith("#retries")
        # The refresh names the page without the fragment: a refresh to the same URL with a
        # fragment is a scroll in the page, and the browser never asks again.
        assert 'http-equiv="refresh" content="2;url=/console/operations"' in page
        ((request_id, state),) = REQUEST_ROW.findall(page)
        assert state == "requested"
        await asyncio.sleep(0.5)
        assert (await _states(console))[request_id] == "requested"  # nobody else may apply it

        # The projection's runner starts in another process, takes the leader lock and the request.
        # (with the console's privacy key: both open the same sealed statements)
        runner = service_factory("", LRS_RELAY_ENABLED="false", LRS_FRAMEWORKS_DIR=str(tmp_path / "frameworks"),
                                 LRS_PRIVACY_KEY_FILE=str(settings.privacy_master_key_file))
        await runner.start()
        deadline = asyncio.get_running_loop().time() + 30
        while (await _states(console))[request_id] != "done":
            assert asyncio.get_running_loop().time() < deadline, await _states(console)
            await asyncio.sleep(0.2)
        page = await (await console.get("/console/operations")).text()
        assert f'<tr data-position="{position}">' not in page and 'http-equiv="refresh"' not in page
        conn = await asyncpg.connect(database_url)
        try:
            assert await conn.fetchval("SELECT count(*) FROM projection_parked") == 0
            row = await conn.fetchrow("SELECT requested_by, state, error FROM projection_retry_requests")
            assert tuple(row) == ("e2e-key", "done", None)
        finally:
            await conn.close()


async def test_retry_of_an_event_that_is_not_parked_and_by_a_read_only_credential(console: TestClient) -> None:
    await sign_in(console)
    html = await (await console.get("/console/operations")).text()
    missing = await console.post("/console/operations/parked/99/retry", data={"csrf": form_token(html)})
    assert missing.status == 404 and "no event at position 99 is parked" in await missing.text()
    bad = await console.post("/console/operations/parked/x/retry", data={"csrf": form_token(html)})
    assert bad.status == 400
    huge = await console.post("/console/operations/parked/99999999999999999999/retry", data={"csrf": form_token(html)})
    assert huge.status == 400 and "position" in await huge.text()
    await add_credential(console, "viewer", "viewer-secret", ["all/read"])
    await sign_in(console, "viewer", "viewer-secret")
    html = await (await console.get("/console/operations")).text()
    refused = await console.post("/console/operations/parked/1/retry", data={"csrf": form_token(html)})
    assert refused.status == 403


async def test_a_retry_that_fails_is_shown_failed(console: TestClient) -> None:
    """The in-process runner (projections on) takes requests the same way; a
    request for an event that is no longer parked when it runs ends failed, with why."""
    from lrs.http import keys
    from projections.retry_requests import request_retry

    await sign_in(console)
    await request_retry(console.app[keys.POOL], "competency", 12345, "default", "e2e-key")
    deadline = asyncio.get_running_loop().time() + 15
    while "failed" not in (states := await _states(console)).values():
        assert asyncio.get_running_loop().time() < deadline, states
        await asyncio.sleep(0.1)
    page = await (await console.get("/console/operations")).text()
    assert "no event at position 12345 is parked" in page


async def run_lrs(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "lrs", *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    return proc.returncode or 0, out.decode(), err.decode()


async def test_audit_status_shows_the_last_verify_run_and_the_last_anchor(database_url: str, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = {**os.environ, "LRS_DATABASE_URL": database_url, "LRS_DATA_DIR": str(data_dir), "LRS_LOG_LEVEL": "warning"}
    app = create_app(
        settings_for(database_url, tmp_path, data_dir=data_dir, audit_verify_stale_days=3.0),
        database_url=database_url, nats_url=None,
    )
    async with TestServer(app) as server, TestClient(server) as console:
        for _ in range(3):
            assert (await console.post("/xapi/statements", headers=xapi_headers(), json=statement())).status == 200
        await sign_in(console)
        page = await (await console.get("/console/operations", headers={"Accept-Language": "en"})).text()
        assert "No verification recorded" in page and 'id="verify-stale"' in page and "No anchor signed yet" in page

        code, out, err = await run_lrs(env, "audit", "anchor")
        assert code == 0, err
        code, out, err = await run_lrs(env, "audit", "verify", "--anchors", str(data_dir / "anchors.jsonl"))
        assert code == 0, out + err
        head = await _head(database_url)
        page = await (await console.get("/console/operations", headers={"Accept-Language": "en"})).text()
        assert f'data-result="intact" data-through="{head}"' in page
        assert f"Hash chain intact through position {head}." in page and "Matches 1 signed anchors." in page
        assert 'id="verify-stale"' not in page
        by = re.search(r'id="verify-by">([^<]+)<', page).group(1)
        assert by.startswith("cli:") and "@" in by
        assert f'<div id="last-anchor" data-position="{head}" data-signature="holds">' in page
        assert "The log still has the anchored hash." in page
        vi = await (await console.get("/console/operations", headers={"Accept-Language": "vi"})).text()
        assert f"Chuỗi băm nguyên vẹn đến vị trí {head}." in vi

        # A rewritten event: the next run is recorded broken, and the page says where.
        conn = await asyncpg.connect(database_url)
        try:
            await conn.execute("ALTER TABLE events DISABLE TRIGGER events_append_only")
            await conn.execute("UPDATE events SET payload = payload || ' '::bytea WHERE position = 2")
            await conn.execute("ALTER TABLE events ENABLE TRIGGER events_append_only")
        finally:
            await conn.close()
        code, out, _ = await run_lrs(env, "audit", "verify")
        assert code == 1 and "first altered or missing position 2" in out
        page = await (await console.get("/console/operations", headers={"Accept-Language": "en"})).text()
        assert 'data-result="broken" data-through="1"' in page
        assert "first altered or missing position 2" in page
        runs = (data_dir / "verify-runs.jsonl").read_text().splitlines()
        assert len(runs) == 2 and json.loads(runs[1])["first_bad"] == 2

        # An old run is stale: the page warns.
        old = {**json.loads(runs[1]), "finished_at": "2020-01-01T00:00:00+00:00"}
        with open(data_dir / "verify-runs.jsonl", "a") as handle:
            handle.write(json.dumps(old) + "\n")
        page = await (await console.get("/console/operations", headers={"Accept-Language": "en"})).text()
        assert 'id="verify-stale"' in page and "No chain verification in the last 3 days." in page


async def _head(database_url: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        return int(await conn.fetchval("SELECT position FROM log_head"))
    finally:
        await conn.close()
