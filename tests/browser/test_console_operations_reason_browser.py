"""The Operations page says why the projection stopped, in the page's
language, at phone width: worded from the ``reason_code`` and
``reason_values`` the service gives (lrs/console/projection_reasons.py).

The projection is stopped for a known reason: an event altered by the
database's superuser and the checkpoint built with other rules, so that the
service, started again, rebuilds the projection from the log, finds the hash
chain broken at that event and stops (``log_chain_broken``)."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any, AsyncIterator

import aiohttp
import asyncpg
from aiohttp.test_utils import TestServer

from lrs.config import Settings
from lrs.console.i18n import MESSAGES
from lrs.payload_codec import open_payload
from lrs.service import create_app
from tests.browser.test_console_browser import LOCALES, PHONE, Api, phone_page, shot
from tests.e2e.conftest import KEY, SECRET
from tests.e2e.test_competency_api import roster
from tests.integration.competency_statements import MODULES, course_statement


@contextlib.asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[tuple[str, Api]]:
    app = create_app(settings, database_url=settings.database_url, nats_url=None)
    async with TestServer(app, host="127.0.0.1") as server, aiohttp.ClientSession() as session:
        base = str(server.make_url("")).rstrip("/")
        yield base, Api(base, session)


async def competency_check(api: Api, until: Any) -> dict[str, Any]:
    """The projection's part of /ready, once ``until`` holds of it."""
    for _ in range(1200):
        found = (await api.get("/ready"))["checks"]["projections"]["competency"]
        if until(found):
            return found  # type: ignore[no-any-return]
        await asyncio.sleep(0.05)
    raise AssertionError(f"the projection never got there: {found}")


async def test_why_the_projection_stopped_is_worded_on_the_operations_page(
    browser: Any, database_url: str, tmp_path: Path, screenshots: Path
) -> None:
    settings = Settings(
        database_url=database_url, frameworks_dir=tmp_path / "frameworks", nats_url=None, relay_enabled=False,
        bootstrap_credential=f"{KEY}:{SECRET}", data_dir=tmp_path / "data",
    )
    async with serving(settings) as (_, api):
        await api.post("/competency/admin/roster", roster({"mic-dt-1": [1, 2]}))
        await api.post("/xapi/statements", [course_statement(1, m, v, i) for i, (m, v) in enumerate(MODULES)])
        projected = await competency_check(api, lambda c: c["state"] == "current" and c["position"] == c["log_head"])
    conn = await asyncpg.connect(database_url)
    try:
        altered = projected["log_head"] - 2
        payload = open_payload(await conn.fetchval("SELECT payload FROM events WHERE position = $1", altered))
        assert b'"timestamp":"2025-' in payload
        async with conn.transaction():
            await conn.execute("ALTER TABLE events DISABLE TRIGGER events_append_only")
            await conn.execute("UPDATE events SET payload = $1 WHERE position = $2",
                               payload.replace(b'"timestamp":"2025-', b'"timestamp":"2024-', 1), altered)
            await conn.execute("ALTER TABLE events ENABLE TRIGGER events_append_only")
        await conn.execute("UPDATE projection_checkpoints SET rule_version = rule_version - 1 WHERE name = 'competency'")
    finally:
        await conn.close()

    async with serving(settings) as (base, api):
        stopped = await competency_check(api, lambda c: c["state"] == "stopped")
        assert (stopped["reason_code"], stopped["reason_values"]) == ("log_chain_broken", {"position": altered})
        for locale, language in LOCALES:
            async with phone_page(browser, base, locale) as page:
                await page.goto(base + "/console/operations")
                state = page.locator("#projection-state")
                assert await state.get_attribute("data-state") == "stopped"
                assert (await state.inner_text()).strip() == MESSAGES["projection_state_stopped"][language]
                why = page.locator("#projection-reason")
                assert await why.get_attribute("data-code") == "log_chain_broken"
                worded = MESSAGES["projection_reason_log_chain_broken"][language].format(position=altered)
                assert (await why.inner_text()).strip() == f"({worded})"
                assert await why.is_visible()
                if language == "vi":
                    assert "broken" not in worded and f"vị trí {altered}" in worded  # not the English reason
                await shot(page, screenshots, f"operations-projection-stopped-phone-{language}")
                width = await page.evaluate("document.documentElement.scrollWidth")
                assert width <= PHONE["width"], f"the Operations page scrolls sideways on a phone ({width}px)"
