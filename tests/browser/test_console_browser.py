"""The console in headless Chromium: an official's path and an operator's path,
what the pages show checked against the API's answers, a report downloaded,
and a read-only credential that cannot revoke a key.  Screenshots of every
page (desktop and phone widths) are kept under pytest's temp dir."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
from pathlib import Path
from typing import Any, AsyncIterator
from urllib.parse import quote

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import TestServer

from lrs.config import Settings
from lrs.service import create_app
from tests.e2e.conftest import KEY, SECRET, xapi_headers
from tests.e2e.test_competency_api import PROGRAM, roster
from tests.e2e.test_console_operations import run_lrs
from tests.integration.competency_statements import MODULES as CERTIFYING
from tests.integration.competency_statements import course_statement, learner_key

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}


class Api:
    def __init__(self, base: str, session: aiohttp.ClientSession) -> None:
        self.base = base
        self.session = session

    async def get(self, path: str, **params: str) -> Any:
        async with self.session.get(self.base + path, params=params, headers=xapi_headers()) as response:
            assert response.status == 200, await response.text()
            return await response.json()

    async def post(self, path: str, body: Any) -> Any:
        async with self.session.post(self.base + path, json=body, headers=xapi_headers()) as response:
            assert response.status == 200, await response.text()
            return await response.json()


@pytest.fixture
async def served(database_url: str, tmp_path: Path) -> AsyncIterator[tuple[str, Api]]:
    """The service on a real loopback port with a roster and some certified learners."""
    settings = Settings(
        database_url=database_url, frameworks_dir=tmp_path / "frameworks", nats_url=None, relay_enabled=False,
        bootstrap_credential=f"{KEY}:{SECRET}", data_dir=tmp_path / "data",
    )
    app = create_app(settings, database_url=database_url, nats_url=None)
    async with TestServer(app, host="127.0.0.1") as server, aiohttp.ClientSession() as session:
        base = str(server.make_url("")).rstrip("/")
        api = Api(base, session)
        await api.post("/competency/admin/roster", roster({"mic-dt-1": [1, 2, 5], "mic-dt-2": [3, 6], "moh": [4]}))
        statements = []
        for learner in (1, 3, 4):
            statements += [course_statement(learner, m, v, i) for i, (m, v) in enumerate(CERTIFYING)]
        statements += [course_statement(5, m, v, i) for i, (m, v) in enumerate(CERTIFYING[:3])]
        await api.post("/xapi/statements", statements)
        conn = await asyncpg.connect(database_url)
        try:
            head = await conn.fetchval("SELECT position FROM log_head")
        finally:
            await conn.close()
        for _ in range(600):  # the projection follows the log; wait until it has caught up
            summary = await api.get("/competency/units/mic/summary", program=PROGRAM)
            if summary["position"] >= head:
                break
            await __import__("asyncio").sleep(0.05)
        else:
            pytest.fail("the projection did not catch up")
        yield base, api


async def shot(page: Any, screenshots: Path, name: str) -> None:
    await page.screenshot(path=str(screenshots / f"{name}.png"), full_page=True)


async def sign_in(page: Any, base: str, key: str, secret: str) -> None:
    await page.goto(base + "/console/")
    assert "/console/signin" in page.url
    await page.fill("input[name=key]", key)
    await page.fill("input[name=secret]", secret)
    await page.click("form.stack button[type=submit]")
    await page.wait_for_load_state()
    assert "/console/signin" not in page.url, await page.content()


LOCALES = (("vi-VN", "vi"), ("en-GB", "en"))


@contextlib.asynccontextmanager
async def phone_page(browser: Any, base: str, locale: str) -> AsyncIterator[Any]:
    """A page at phone width in ``locale``, signed in with the service's credential."""
    context = await browser.new_context(viewport=PHONE, locale=locale)
    try:
        page = await context.new_page()
        await sign_in(page, base, KEY, SECRET)
        yield page
    finally:
        await context.close()


def number(text: str) -> int:
    return int(text.strip().replace(",", ""))


async def test_officials_path(browser, served, screenshots: Path, tmp_path: Path) -> None:
    base, api = served
    context = await browser.new_context(viewport=DESKTOP, locale="en-GB", accept_downloads=True)
    page = await context.new_page()
    favicons: list[str] = []
    page.on("response", lambda r: favicons.append(f"{r.url} {r.status}") if "favicon" in r.url else None)
    try:
        await sign_in(page, base, KEY, SECRET)
        await page.goto(base + "/console/units")
        await shot(page, screenshots, "units-desktop")
        rows = page.locator("#unit-tree tbody tr")
        assert await rows.count() == 5
        for index in range(await rows.count()):
            row = rows.nth(index)
            unit = await row.get_attribute("data-unit")
            cells = row.locator("td")
            summary = await api.get(f"/competency/units/{unit}/summary", program=PROGRAM)
            assert number(await cells.nth(0).inner_text()) == summary["headcount"], unit
            assert number(await cells.nth(1).inner_text()) == summary["certified"], unit
            shown_rate = (await cells.nth(2).inner_text()).split("%")[0].strip()
            expected = "–" if summary["rate"] is None else f"{summary['rate'] * 100:.1f}"
            assert shown_rate == expected, unit
        assert number(await page.locator('tr[data-unit="mic"] td').nth(0).inner_text()) == 5

        await page.click('tr[data-unit="mic-dt-1"] a')
        await page.wait_for_load_state()
        assert await page.locator("svg.chart").count() == 1
        await shot(page, screenshots, "unit-desktop")
        listed = await api.get("/competency/units/mic-dt-1/learners", program=PROGRAM)
        shown = {
            await r.get_attribute("data-learner"): await r.get_attribute("data-status")
            for r in await page.locator("#unit-learners tbody tr").all()
        }
        assert shown == {item["learner"]: item["status"] for item in listed["learners"]}
        assert shown[learner_key(1)] == "certified" and shown[learner_key(5)] == "in_progress"

        # What is missing, as the API explains it.
        gaps = {item["learner"]: [g["reason"] for g in item["missing"]] for item in listed["learners"]}
        for learner, reasons in gaps.items():
            cell = await page.locator(f'tr[data-learner="{learner}"] td.missing').inner_text()
            assert all(reason in cell for reason in reasons), (learner, cell)
        assert gaps[learner_key(2)] and not gaps[learner_key(1)]

        # The reports, byte for byte what GET /competency/units/{unit}/report sends.
        for button, query in (
            ("#download-csv", {"by": "unit", "format": "csv", "part": "not-certified"}),
            ("#download-xlsx", {"by": "unit", "format": "xlsx"}),
        ):
            async with page.expect_download() as waiting:
                await page.click(button)
            download = await waiting.value
            saved = tmp_path / download.suggested_filename
            await download.save_as(saved)
            async with api.session.get(
                api.base + "/competency/units/mic-dt-1/report", params={"program": PROGRAM, **query},
                headers=xapi_headers(),
            ) as response:
                assert response.status == 200
                expected_bytes = await response.read()
            if query["format"] == "csv":
                assert saved.read_bytes() == expected_bytes
                rows = list(csv.DictReader(io.StringIO(saved.read_text(encoding="utf-8"))))
                assert {r["learner"]: r["status"] for r in rows} == {
                    k: v for k, v in shown.items() if v != "certified"
                }
            else:
                from openpyxl import load_workbook

                book = load_workbook(saved)
                assert book.sheetnames == load_workbook(io.BytesIO(expected_bytes)).sheetnames
                values = [[c.value for c in row] for row in book[book.sheetnames[0]].iter_rows()]
                assert any("mic-dt-1" in [str(v) for v in row] for row in values)

        await page.click(f'tr[data-learner="{learner_key(1)}"] a')
        await page.wait_for_load_state()
        await shot(page, screenshots, "learner-desktop")
        state = await api.get(f"/competency/learners/{quote(learner_key(1), safe='')}")
        (certification,) = state["certifications"]
        assert await page.locator('.cert[data-earned="true"]').count() == 1
        # A competence's evidence trail, as GET .../trail answers it.
        first_competency = state["frameworks"][0]["competencies"][0]["competency"]
        await page.goto(base + f"/console/learners/{quote(learner_key(1), safe='')}/trail?competency={quote(first_competency, safe='')}")
        trail = await api.get(f"/competency/learners/{quote(learner_key(1), safe='')}/trail", competency=first_competency)
        assert await page.locator("#trail tbody tr").count() == len(trail["evidence"]) > 0
        await shot(page, screenshots, "trail-desktop")
        await page.go_back()
        trail_links = page.locator(".cert tr.evidence th a")
        assert await trail_links.count() == len(certification["statement_ids"])
        for row in await page.locator(".cert tr.evidence").all():  # each statement says what it evidenced
            assert (await row.locator("td").nth(3).inner_text()).strip() not in ("", "–")
        first_statement = await page.locator(".cert tr.evidence").first.get_attribute("data-statement")
        assert {await r.get_attribute("data-statement") for r in await page.locator(".cert tr.evidence").all()} == set(
            certification["statement_ids"]
        )
        await trail_links.first.click()
        await page.wait_for_load_state()
        shown_json = json.loads(await page.locator("#statement-json").inner_text())
        assert shown_json["id"] == first_statement
        await shot(page, screenshots, "statement-desktop")

        # A phone: the same pages, stacked, and the Vietnamese switch.
        await page.set_viewport_size(PHONE)
        await page.goto(base + "/console/units")
        await page.click("a[hreflang=vi]")
        await page.wait_for_load_state()
        assert await page.locator("html").get_attribute("lang") == "vi"
        assert "Đạt chứng nhận" in await page.content()
        await shot(page, screenshots, "units-phone-vi")
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"the page scrolls sideways on a phone ({width}px)"
        await page.goto(base + "/console/units/mic-dt-1")
        await shot(page, screenshots, "unit-phone-vi")
        assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        # The browser's own /favicon.ico request was answered 401 on every page (an error in its console).
        assert await page.locator("head link[rel=icon]").count() == 1
        assert favicons == [], favicons
    finally:
        await context.close()


# The smallest text the console draws elsewhere on a phone is the 0.85rem of a
# card's labels; the chart's axis is drawn in the SVG's own units and shrinks
# with it, so at 390 px its labels were some 5 px tall.
READABLE_PX = 9.0


async def test_the_unit_chart_axis_is_readable_on_a_phone(browser, served, screenshots: Path) -> None:
    base, _api = served
    context = await browser.new_context(viewport=PHONE, locale="vi-VN")
    page = await context.new_page()
    try:
        await sign_in(page, base, KEY, SECRET)
        await page.goto(base + "/console/units/mic-dt-1")
        await shot(page, screenshots, "unit-chart-phone")
        chart = await page.locator("svg.chart").bounding_box()
        labels = [await t.bounding_box() for t in await page.locator("svg.chart text.axis").all()]
        texts = [await t.text_content() for t in await page.locator("svg.chart text.axis").all()]
        assert len(labels) >= 7, texts  # five shares and at least two months
        drawn_px = await page.evaluate(  # the font size in CSS pixels once the SVG is scaled to the page
            """() => { const svg = document.querySelector('svg.chart');
                       const scale = svg.getBoundingClientRect().width / svg.viewBox.baseVal.width;
                       return [...svg.querySelectorAll('text.axis')].map(
                           t => parseFloat(getComputedStyle(t).fontSize) * scale); }"""
        )
        assert min(drawn_px) >= READABLE_PX, dict(zip(texts, drawn_px))
        for text, box in zip(texts, labels):
            # inside the chart, not cut off at its edges
            assert chart["x"] <= box["x"] and box["x"] + box["width"] <= chart["x"] + chart["width"], (text, box)
        months = sorted((box for text, box in zip(texts, labels) if not text.endswith("%")), key=lambda b: b["x"])
        for left, right in zip(months, months[1:]):
            assert left["x"] + left["width"] <= right["x"], "the months' labels overlap"
    finally:
        await context.close()


async def test_the_projections_state_is_worded_in_the_pages_language(browser, served) -> None:
    from lrs.console.i18n import MESSAGES

    base, _api = served
    for locale, language in LOCALES:
        async with phone_page(browser, base, locale) as page:
            await page.goto(base + "/console/operations")
            state = page.locator("#projection-state")
            assert await state.get_attribute("data-state") == "running"
            # Vietnamese read "Trạng thái: running"
            assert (await state.inner_text()).strip() == MESSAGES["projection_state_running"][language]


async def test_why_the_projection_is_behind_is_worded_in_the_pages_language(browser, database_url: str, tmp_path: Path) -> None:
    """The notice over an official's page says why the figures are not current
    in the page's language, from the reason code and values the API gives."""
    import asyncio
    import re

    from lrs.console.i18n import MESSAGES
    from tests.integration.competency_statements import PASSED

    settings = Settings(
        database_url=database_url, frameworks_dir=tmp_path / "frameworks", nats_url=None, relay_enabled=False,
        bootstrap_credential=f"{KEY}:{SECRET}", data_dir=tmp_path / "data", competency_stale_after_s=0.3,
        frameworks_poll_s=0,
    )
    app = create_app(settings, database_url=database_url, nats_url=None)
    async with TestServer(app, host="127.0.0.1") as server, aiohttp.ClientSession() as session:
        base = str(server.make_url("")).rstrip("/")
        api = Api(base, session)
        await api.post("/competency/admin/roster", roster({"mic-dt-1": [1]}))
        blocker = await asyncpg.connect(database_url)
        holding = blocker.transaction()
        try:
            head = await blocker.fetchval("SELECT position FROM log_head")
            for _ in range(600):  # the roster projected
                if (await api.get("/competency/units/mic/summary", program=PROGRAM, stale="ok"))["position"] >= head:
                    break
                await asyncio.sleep(0.05)
            await holding.start()
            await blocker.execute("SELECT 1 FROM projection_checkpoints WHERE name = 'competency' FOR UPDATE")
            await api.post("/xapi/statements", [course_statement(1, "device-security", PASSED, 1)])  # not applied
            for _ in range(600):
                marked = await api.get("/competency/units/mic/summary", program=PROGRAM, stale="ok")
                if marked.get("freshness", {}).get("state") == "behind":
                    break
                await asyncio.sleep(0.05)
            assert marked["freshness"]["reason_code"] == "behind" and marked["freshness"]["reason_values"]["events"] == 1
            for locale, language in LOCALES:
                async with phone_page(browser, base, locale) as page:
                    await page.goto(base + "/console/units/mic-dt-1")
                    why = page.locator("#freshness #freshness-reason")
                    assert await why.get_attribute("data-code") == "behind"
                    # the catalogue's words with one event and the age the page was shown at (it grows)
                    words = re.escape(MESSAGES["projection_reason_behind"][language].format(events=1, age_s=999_999))
                    shown = (await why.inner_text()).strip()
                    assert re.fullmatch(words.replace("999,999", r"[\d,]+"), shown), shown
                    if language == "vi":
                        assert "events" not in shown and "behind" not in shown, shown  # read in English before
        finally:
            if blocker.is_in_transaction():
                await holding.rollback()
            await blocker.close()


async def test_the_programmes_whole_name_shows_on_a_phone(browser, served) -> None:
    base, _api = served
    program = Path(__file__).parents[2] / "schemas/frameworks/civil-servant-basic-digital-skills.program.json"
    title = json.loads(program.read_text())["title"]
    for locale, language in LOCALES:
        async with phone_page(browser, base, locale) as page:
            await page.goto(base + "/console/units/mic-dt-1")
            # a closed <select> cuts "Chứng nhận kỹ năng số cơ bản cho cán bộ, công…" at 390 px: the name is written out
            name = page.locator("form.program .program-name").first
            assert title[language] in await name.inner_text()
            box = await name.bounding_box()
            assert box is not None and box["x"] + box["width"] <= PHONE["width"]
            assert await name.evaluate("e => e.scrollWidth <= e.clientWidth && e.getClientRects().length >= 1")
            assert await page.locator("form.program select[name=program] option:checked").count() == 1
            await page.click("form.program button[type=submit]")
            await page.wait_for_load_state()
            assert "program=" in page.url and "/console/units/mic-dt-1" in page.url


async def test_dates_are_written_for_the_pages_language_with_the_exact_value_kept(browser, served) -> None:
    import re

    base, api = served
    listed = await api.get("/competency/units/mic-dt-1/learners", program=PROGRAM)
    certified_at = next(item["certified_at"] for item in listed["learners"] if item["certified_at"])
    written = {"vi": r"\d\d/\d\d/\d{4} \d\d:\d\d UTC", "en": r"\d{1,2} [A-Z][a-z]{2} \d{4} \d\d:\d\d UTC"}
    for locale, language in LOCALES:
        async with phone_page(browser, base, locale) as page:
            await page.goto(base + "/console/units/mic-dt-1")
            # the column showed "2026-04-13T10:00:00.000000Z", broken over two lines on a phone
            shown = page.locator(f'#unit-learners time[datetime="{certified_at}"]').first
            assert re.fullmatch(written[language], (await shown.inner_text()).strip())
            box = await shown.bounding_box()
            assert box is not None and box["height"] < 30, box  # one line


async def test_a_learners_competences_are_named_with_their_titles(browser, served) -> None:
    base, api = served
    titles = {}
    for source in (Path(__file__).parents[2] / "schemas/frameworks").glob("*.json"):
        for area in json.loads(source.read_text()).get("areas", ()):
            titles |= {c["iri"]: (c["code"], c["title"]) for c in area["competences"]}
    state = await api.get(f"/competency/learners/{quote(learner_key(1), safe='')}")
    shown = [c["competency"] for f in state["frameworks"] for c in f["competencies"]]
    assert shown
    for locale, language in LOCALES:
        async with phone_page(browser, base, locale) as page:
            await page.goto(base + f"/console/learners/{quote(learner_key(1), safe='')}")
            # the rows read "4.2" alone
            rows = [(await h.inner_text()).strip() for h in await page.locator("section.framework tbody th").all()]
            expected = []
            for iri in shown:
                code, title = titles[iri]
                expected.append(f"{code} — {title.get(language, title['en'])}")
            assert rows == expected


async def test_a_units_learners_are_listed_by_the_identifier_shown(browser, served) -> None:
    base, api = served
    listed = await api.get("/competency/units/mic/learners", program=PROGRAM)
    async with phone_page(browser, base, "vi-VN") as page:
        await page.goto(base + "/console/units/mic")
        rows = [(await a.inner_text()).strip() for a in await page.locator("#unit-learners tbody th a").all()]
        shown = [item["learner"] or item["key"] for item in listed["learners"]]
        assert sorted(rows) == sorted(shown) and len(rows) == 5
        # they came in the projection's key order: the pseudonym's, as learners are sealed
        # (that order is the shown one for 1 fixture in 120; tests/unit/test_console_learner_order.py is exact)
        assert rows == sorted(shown, key=str.casefold), rows


async def test_operators_path_and_a_read_only_credential(
    browser, served, screenshots: Path, database_url: str, tmp_path: Path
) -> None:
    base, api = served
    # The auditor's commands, in their own processes, against the service's data directory.
    env = {**os.environ, "LRS_DATABASE_URL": database_url, "LRS_DATA_DIR": str(tmp_path / "data"),
           "LRS_LOG_LEVEL": "warning"}
    for command in (["audit", "anchor"], ["audit", "verify", "--anchors", str(tmp_path / "data" / "anchors.jsonl")]):
        code, out, err = await run_lrs(env, *command)
        assert code == 0, out + err
    conn = await asyncpg.connect(database_url)
    try:
        head = await conn.fetchval("SELECT position FROM log_head")
        # Park an applied event by hand, as the runner does after repeated failures; retrying
        # applies it again, which evidence keyed by statement id makes harmless.
        await conn.execute(
            "INSERT INTO projection_parked (name, position, tenant, attempts, error) "
            "VALUES ('competency', $1, 'default', 5, 'ValueError(''simulated'')')", head
        )
    finally:
        await conn.close()
    context = await browser.new_context(viewport=DESKTOP, locale="en-GB")
    page = await context.new_page()
    try:
        await sign_in(page, base, KEY, SECRET)
        await page.goto(base + "/console/operations")
        assert number(await page.locator("#log-head").inner_text()) == head
        assert await page.locator(f'#parked tr[data-position="{head}"]').count() == 1
        # The audit status: the verify run and the anchor just made, and no staleness warning.
        assert await page.locator("#last-verify").get_attribute("data-result") == "intact"
        assert number(await page.locator("#last-verify").get_attribute("data-through")) == head
        assert await page.locator("#last-anchor").get_attribute("data-signature") == "holds"
        assert await page.locator("#verify-stale").count() == 0
        await page.locator("#audit").screenshot(path=str(screenshots / "audit-status.png"))
        await shot(page, screenshots, "operations-desktop")
        await page.click(f'#parked tr[data-position="{head}"] button')
        await page.wait_for_load_state()
        # A request to the projection's runner: the page shows it and refreshes until it is done.
        assert await page.locator("#retries tr[data-request]").count() == 1
        try:
            await page.locator('#retries tr[data-state="done"]').wait_for(timeout=30_000)
        except Exception as exc:  # say what the page showed instead
            raise AssertionError(await page.locator("main").inner_text()) from exc
        assert "unparked" in await page.locator("#retries tr[data-state=done] td.state").inner_text()
        assert await page.locator(f'#parked tr[data-position="{head}"]').count() == 0
        await shot(page, screenshots, "operations-retried")

        await page.goto(base + "/console/statements")
        await page.fill("input[name=agent]", json.dumps({"mbox": "mailto:cs5@example.gov.vn"}))
        await page.click("#statement-filters button[type=submit]")
        await page.wait_for_load_state()
        api_list = await api.get("/xapi/statements", agent=json.dumps({"mbox": "mailto:cs5@example.gov.vn"}))
        ids = [await r.get_attribute("data-id") for r in await page.locator("#statement-list tbody tr[data-id]").all()]
        assert ids == [s["id"] for s in api_list["statements"]] and len(ids) == 3
        await shot(page, screenshots, "statements-desktop")

        await page.goto(base + "/console/credentials")
        await page.fill("#new-credential input[name=name]", "auditor")
        await page.check('#new-credential input[value="all/read"]')
        await page.click("#new-credential button[type=submit]")
        await page.wait_for_load_state()
        new_key = await page.locator("#created-key").inner_text()
        new_secret = await page.locator("#created-secret").inner_text()
        await shot(page, screenshots, "credentials-desktop")
        await page.click("header form button")  # sign out
        await page.wait_for_load_state()

        await sign_in(page, base, new_key, new_secret)
        await page.goto(base + "/console/credentials")
        await shot(page, screenshots, "credentials-read-only")
        assert await page.locator(f'tr[data-key="{KEY}"]').count() == 1
        assert await page.locator(f'tr[data-key="{KEY}"] button').count() == 0  # no revoke button
        # Sending the form anyway (with this session's valid CSRF token) is refused.
        status = await page.evaluate(
            """async ([key]) => {
                const csrf = document.querySelector('input[name=csrf]').value;
                const body = new URLSearchParams({csrf});
                const r = await fetch('/console/credentials/' + encodeURIComponent(key) + '/revoke',
                                      {method: 'POST', body, redirect: 'manual'});
                return r.status;
            }""",
            [KEY],
        )
        assert status == 403
        await page.goto(base + "/console/credentials")
        assert "revoked" not in (await page.locator(f'tr[data-key="{KEY}"] td.state').inner_text()).lower()
        await api.get("/xapi/about")  # the admin key still answers
        await api.get("/xapi/statements", limit="1")

        # The operators' pages on a phone: stacked, no sideways scrolling.
        await page.set_viewport_size(PHONE)
        for name, path in (("operations", "/console/operations"), ("statements", "/console/statements"),
                           ("credentials", "/console/credentials"), ("statement", f"/console/statements/{ids[0]}")):
            await page.goto(base + path)
            await shot(page, screenshots, f"{name}-phone")
            width = await page.evaluate("document.documentElement.scrollWidth")
            assert width <= PHONE["width"], f"{path} scrolls sideways on a phone ({width}px)"
    finally:
        await context.close()


# The learner page's framework cards, in the frameworks' order (IRI), with their versions.
FRAMEWORK_TITLES = {
    "en": ["DigComp 2.2: The Digital Competence Framework for Citizens 2.2",
           "Digital competence framework for learners (Circular 02/2025/TT-BGDDT) 1.0"],
    "vi": ["Khung năng lực số cho công dân (DigComp 2.2) 2.2",
           "Khung năng lực số cho người học (Thông tư 02/2025/TT-BGDĐT) 1.0"],
}


async def test_learner_pages_name_never_rostered_linked_and_erased_learners_in_vietnamese_and_english(
    browser, served, database_url: str, screenshots: Path
) -> None:
    """With personal data sealed (the default), a learner page reached by the
    projection's key names the learner as officials know them: the identifier
    their Statements hold for one the roster never named, the linked
    accounts of a person, and "(đã xoá)" / "(erased)" with nothing in clear
    once erased."""
    from lrs.store.learner_refs import PSEUDONYM_KEY_PREFIX
    from tests.e2e.test_competency_persons import MOBIEDU_KEY, on_mobiedu
    from tests.e2e.test_erasure_api import add_eraser, as_eraser

    base, api = served
    await api.post("/xapi/statements", [course_statement(8, m, v, 40 + i) for i, (m, v) in enumerate(CERTIFYING[:3])]
                   + [on_mobiedu(course_statement(1, *CERTIFYING[0], 60))])
    await api.post("/competency/admin/identities", {"op": "link", "person": learner_key(1), "identifiers": [MOBIEDU_KEY]})
    await add_eraser(database_url, ["erase"])
    async with api.session.post(base + "/admin/erasures", headers=as_eraser(),
                                json={"agent": {"mbox": "mailto:cs3@example.gov.vn"}, "reason": "request 2026-88"}) as erased:
        assert erased.status == 200, await erased.text()
    conn = await asyncpg.connect(database_url)
    try:
        head = await conn.fetchval("SELECT position FROM log_head")
    finally:
        await conn.close()
    for _ in range(600):
        if (await api.get("/competency/units/mic/summary", program=PROGRAM))["position"] >= head:
            break
        await __import__("asyncio").sleep(0.05)
    else:
        pytest.fail("the projection did not catch up")
    key_of = {n: (await api.get(f"/competency/learners/{quote(learner_key(n), safe='')}"))["key"] for n in (1, 3, 8)}
    assert all(key.startswith(PSEUDONYM_KEY_PREFIX) for key in key_of.values())

    for locale, language, erased_text, also_known in (("en-GB", "en", "(erased)", "Also known as"),
                                                      ("vi-VN", "vi", "(đã xoá)", "Định danh liên kết")):
        context = await browser.new_context(viewport=PHONE, locale=locale)
        page = await context.new_page()
        try:
            await sign_in(page, base, KEY, SECRET)
            await page.goto(base + f"/console/learners/{quote(key_of[8], safe='')}")
            assert await page.locator("html").get_attribute("lang") == language
            assert (await page.locator("#learner-shown").inner_text()).strip() == learner_key(8)
            # Each framework's card is headed by its title in the page's language.
            titles = [(await h.inner_text()).strip() for h in await page.locator("section.framework h3").all()]
            assert titles == FRAMEWORK_TITLES[language], titles
            assert PSEUDONYM_KEY_PREFIX not in await page.content()
            await shot(page, screenshots, f"learner-never-rostered-{language}")

            await page.goto(base + f"/console/learners/{quote(key_of[1], safe='')}")
            assert (await page.locator("#learner-shown").inner_text()).strip() == learner_key(1)
            known = (await page.locator("#learner-identifiers").inner_text()).strip()
            assert known == f"{also_known}: {learner_key(1)}, {MOBIEDU_KEY}"
            assert PSEUDONYM_KEY_PREFIX not in await page.content()
            assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
            await shot(page, screenshots, f"learner-linked-{language}")

            await page.goto(base + f"/console/learners/{quote(key_of[3], safe='')}")
            assert (await page.locator("#learner-shown").inner_text()).strip() == erased_text
            assert (await page.title()).startswith(erased_text + " · ")
            content = await page.content()
            assert "cs3@" not in content and PSEUDONYM_KEY_PREFIX not in content
            await shot(page, screenshots, f"learner-erased-{language}")
        finally:
            await context.close()
