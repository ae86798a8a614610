"""The console in headless Chromium, for officials who read Vietnamese: the
unit page's reports downloaded in the page's language, what is missing named
with the competences' words, and the programme chooser with many programmes
on a 360 px phone with JavaScript off."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook

import tests.browser.test_console_browser as console_browser
from projections.competency.catalog import FRAMEWORKS_DIR
from tests.browser.test_console_browser import LOCALES, shot, sign_in
from tests.e2e.conftest import KEY, SECRET, xapi_headers
from tests.e2e.test_competency_api import PROGRAM
from tests.integration.competency_statements import learner_key

served = console_browser.served  # the service with a roster and some certified learners
NARROW_PHONE = {"width": 360, "height": 740}
BOM = b"\xef\xbb\xbf"
MANY = 40


async def test_reports_downloaded_from_the_vietnamese_console_are_in_vietnamese(
    browser, served, screenshots: Path, tmp_path: Path
) -> None:
    base, api = served
    context = await browser.new_context(viewport=NARROW_PHONE, locale="vi-VN", accept_downloads=True)
    try:
        page = await context.new_page()
        await sign_in(page, base, KEY, SECRET)
        await page.goto(base + "/console/units/mic-dt-1")
        assert await page.locator("html").get_attribute("lang") == "vi"
        await shot(page, screenshots, "unit-reports-phone-vi")
        saved: dict[str, bytes] = {}
        for button in ("#download-csv-summary", "#download-csv", "#download-xlsx"):
            async with page.expect_download() as waiting:
                await page.click(button)
            download = await waiting.value
            path = tmp_path / download.suggested_filename
            await download.save_as(path)
            saved[button] = path.read_bytes()
            # what the API sends for language=vi, byte for byte (the XLSX but for its save time)
            query = dict(part.split("=", 1) for part in (await page.get_attribute(button, "href")).split("?", 1)[1].split("&"))
            assert query["language"] == "vi"
        summary = list(csv.reader(io.StringIO(saved["#download-csv-summary"].decode("utf-8"))))
        assert saved["#download-csv-summary"].startswith(BOM)  # Excel shows the Vietnamese only with it
        assert summary[0][0] == "\ufeffMã đơn vị" and summary[0][1:4] == ["Tên đơn vị", "Mã loại đơn vị", "Loại đơn vị"]
        assert summary[1][2:4] == ["unit", "Đơn vị"]
        learners = list(csv.DictReader(io.StringIO(saved["#download-csv"].decode("utf-8-sig"))))
        assert {(r["Học viên"], r["Mã trạng thái"], r["Trạng thái"]) for r in learners} == {
            (learner_key(2), "not_started", "chưa bắt đầu"), (learner_key(5), "in_progress", "đang học"),
        }
        assert all("(cần " in r["Nội dung còn thiếu"] for r in learners)
        async with api.session.get(
            api.base + "/competency/units/mic-dt-1/report",
            params={"program": PROGRAM, "by": "unit", "format": "csv", "part": "not-certified", "language": "vi"},
            headers=xapi_headers(),
        ) as response:
            assert response.status == 200 and await response.read() == saved["#download-csv"]
        book = load_workbook(io.BytesIO(saved["#download-xlsx"]))
        assert book.sheetnames == ["Tổng hợp", "Chưa đạt chứng nhận"]
        rows = [[c.value for c in row] for row in book["Tổng hợp"].iter_rows()]
        assert rows[0][0] == "Chương trình" and "Mã đơn vị" in rows[7] and "Loại đơn vị" in rows[7]
    finally:
        await context.close()


async def test_what_is_missing_names_each_competence_with_its_words(browser, served) -> None:
    base, api = served
    titles = {}
    for source in FRAMEWORKS_DIR.glob("*.json"):
        for area in json.loads(source.read_text()).get("areas", ()):
            titles |= {c["iri"]: (c["code"], c["title"]) for c in area["competences"]}
    listed = await api.get("/competency/units/mic-dt-1/learners", program=PROGRAM)
    gaps = [g["competency"] for item in listed["learners"] if item["learner"] == learner_key(2) for g in item["missing"]]
    assert gaps
    for locale, language in LOCALES:
        async with console_browser.phone_page(browser, base, locale) as page:
            await page.goto(base + "/console/units/mic-dt-1")
            shown = page.locator(f'tr[data-learner="{learner_key(2)}"] ul.gaps li')
            assert await shown.count() == len(gaps)
            for item, competency in zip(await shown.all(), gaps):
                code, title = titles[competency]
                # the list read "1.1 (needs CB2): no evidence"
                assert (await item.locator("strong").inner_text()).strip() == f"{code} — {title.get(language, title['en'])}"


@pytest.fixture
def many_programmes(tmp_path: Path) -> list[tuple[str, str]]:
    """MANY more programmes installed beside the shipped one (before ``served`` starts the service):
    (the chooser's value, the Vietnamese title) each."""
    body = json.loads((FRAMEWORKS_DIR / "civil-servant-basic-digital-skills.program.json").read_text(encoding="utf-8"))
    installed = tmp_path / "frameworks"
    installed.mkdir()
    made = []
    for n in range(MANY):
        iri = f"https://lrs.example.org/competency/programs/district-{n:02d}"
        title = {"en": f"District {n:02d} digital skills", "vi": f"Kỹ năng số cho cán bộ quận, huyện số {n:02d}"}
        if n == 7:
            title["vi"] += " và các đơn vị sự nghiệp công lập trực thuộc Ủy ban nhân dân cấp huyện"
        (installed / f"district-{n:02d}.json").write_text(
            json.dumps({**body, "iri": iri, "title": title}), encoding="utf-8"
        )
        made.append((f"{iri}|{body['version']}", title["vi"]))
    return made


@pytest.fixture
def served_with_many(many_programmes: list[tuple[str, str]], served: Any) -> tuple[Any, list[tuple[str, str]]]:
    return served, many_programmes


async def test_the_programme_chooser_stays_short_with_many_programmes_on_a_phone_without_javascript(
    browser, served_with_many, screenshots: Path
) -> None:
    (base, _api), programmes = served_with_many
    context = await browser.new_context(viewport=NARROW_PHONE, locale="vi-VN", java_script_enabled=False)
    try:
        page = await context.new_page()
        await sign_in(page, base, KEY, SECRET)
        await page.goto(base + "/console/units/mic-dt-1")
        await shot(page, screenshots, "program-chooser-phone-vi")
        chooser = page.locator("form.program select[name=program]")
        assert await chooser.locator("option").count() == MANY + 1
        form = await page.locator("form.program").bounding_box()
        assert form is not None and form["height"] < 160, form  # one line per programme ran some 40 px each
        assert await page.evaluate("document.documentElement.scrollWidth") <= NARROW_PHONE["width"]
        value, title = programmes[7]  # the longest name
        await chooser.select_option(value)
        async with page.expect_navigation():
            await page.click("form.program button[type=submit]")
        assert "program=" in page.url and "/console/units/mic-dt-1" in page.url
        assert await chooser.evaluate("e => e.value") == value
        chosen = page.locator("#program-chosen")
        assert title in await chosen.inner_text()  # the whole name, which the closed select cuts
        box = await chosen.bounding_box()
        assert box is not None and box["x"] + box["width"] <= NARROW_PHONE["width"]
        assert await page.evaluate("document.documentElement.scrollWidth") <= NARROW_PHONE["width"]
        # the report links carry the programme chosen and the page's language
        href = await page.get_attribute("#download-xlsx", "href")
        assert "district-07" in href and "language=vi" in href
        await shot(page, screenshots, "program-chosen-phone-vi")
    finally:
        await context.close()
