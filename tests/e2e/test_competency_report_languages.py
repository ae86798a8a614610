"""GET /competency/units/{unit}/report?language=, the console's report and
``lrs report --language`` against the real service and PostgreSQL: English
unchanged by default, Vietnamese for officials, anything else a 400 naming
the parameter."""

from __future__ import annotations

import asyncio
import csv
import io
import os
import sys
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestServer, TestClient
from openpyxl import load_workbook

from lrs.service import create_app
from tests.e2e.conftest import xapi_headers
from tests.e2e.test_competency_api import CERTIFYING, PROGRAM, caught_up, post, roster
from tests.e2e.test_console import settings_for, sign_in
from tests.integration.competency_statements import PASSED, course_statement, learner_key

BOM = b"\xef\xbb\xbf"


async def _rostered(client: Any, database_url: str) -> None:
    response = await client.post("/competency/admin/roster", json=roster({"mic-dt-1": [1, 2], "mic-dt-2": [3]}), headers=xapi_headers())
    assert response.status == 200
    await post(client, *(course_statement(1, m, v, i) for i, (m, v) in enumerate(CERTIFYING)),
               course_statement(2, "searching", PASSED, 5, score=0.65))
    await caught_up(client, database_url)


async def _report(client: Any, status: int = 200, **params: str) -> tuple[Any, bytes]:
    answer = await client.get("/competency/units/mic/report", params={"program": PROGRAM, **params}, headers=xapi_headers())
    assert answer.status == status, await answer.text()
    return answer, await answer.read()


async def test_reports_in_english_by_default_in_vietnamese_when_asked_and_400_otherwise(
    client: Any, database_url: str, tmp_path: Path
) -> None:
    await _rostered(client, database_url)
    for part in ("summary", "not-certified"):
        _, english = await _report(client, part=part)
        _, named = await _report(client, part=part, language="en")
        assert english == named and not english.startswith(BOM) and english.startswith(b"unit," if part == "summary" else b"learner,")

    answer, body = await _report(client, by="unit", language="vi")
    assert answer.content_type == "text/csv" and answer.charset == "utf-8" and body.startswith(BOM)
    rows = list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"))))
    assert [(r["Mã đơn vị"], r["Mã loại đơn vị"], r["Loại đơn vị"], r["Tổng số"], r["Đạt chứng nhận"]) for r in rows] == [
        ("mic", "ministry", "Bộ", "3", "1"), ("mic-dt", "agency", "Cơ quan", "0", "0"),
        ("mic-dt-1", "unit", "Đơn vị", "2", "1"), ("mic-dt-2", "unit", "Đơn vị", "1", "0"),
    ]
    _, body = await _report(client, part="not-certified", language="vi")
    learners = list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"))))
    assert [(r["Học viên"], r["Mã trạng thái"], r["Trạng thái"]) for r in learners] == [
        (learner_key(2), "in_progress", "đang học"), (learner_key(3), "not_started", "chưa bắt đầu"),
    ]
    assert "1.1 (cần CB2): điểm cao nhất 0.65 < ngưỡng đạt 0.70" in learners[0]["Nội dung còn thiếu"]
    assert "chưa có minh chứng" in learners[1]["Nội dung còn thiếu"]

    _, workbook = await _report(client, format="xlsx", language="vi")
    book = load_workbook(io.BytesIO(workbook))
    assert book.sheetnames == ["Tổng hợp", "Chưa đạt chứng nhận"]
    assert "Trạng thái" in [c.value for c in book["Chưa đạt chứng nhận"][8]]
    _, workbook = await _report(client, format="xlsx")
    assert load_workbook(io.BytesIO(workbook)).sheetnames == ["Summary", "Not certified"]

    for wrong in ("fr", "VI", "vi-VN", ""):
        bad, body = await _report(client, 400, language=wrong)
        problem = await bad.json()
        assert problem["path"] == "language" and "language must be one of vi, en" in problem["error"], problem

    # lrs report --language vi writes what the API sends
    env = {**os.environ, "LRS_DATABASE_URL": database_url, "LRS_LOG_LEVEL": "warning",
           "LRS_PRIVACY_KEY_FILE": str(tmp_path / "privacy-key")}
    output = tmp_path / "mic.csv"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "lrs", "report", "mic", "--program", PROGRAM, "--format", "csv", "--language", "vi",
        "--output", str(output), env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    _, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    _, summary = await _report(client, language="vi")
    assert output.read_bytes() == summary and summary.startswith(BOM)


async def test_the_consoles_report_is_in_the_language_asked_else_the_pages(database_url: str, tmp_path: Path) -> None:
    app = create_app(settings_for(database_url, tmp_path), database_url=database_url, nats_url=None)
    async with TestServer(app) as server, TestClient(server) as console:
        await _rostered(console, database_url)
        assert (await sign_in(console)).status == 303
        console.session.cookie_jar.update_cookies({"lrs_lang": "vi"})
        page = await (await console.get("/console/units/mic", params={"program": f"{PROGRAM}|2025.1"})).text()
        assert "language=vi" in page and "language=en" not in page  # the page's download links
        for params, starts in (({}, BOM + "Mã đơn vị".encode()), ({"language": "en"}, b"unit,"),
                               ({"language": "vi"}, BOM + "Mã đơn vị".encode())):
            answer = await console.get("/console/units/mic/report", params=params)
            assert answer.status == 200 and (await answer.read()).startswith(starts), params
        bad = await console.get("/console/units/mic/report", params={"language": "fr"})
        assert bad.status == 400 and "language must be one of vi, en, got &#39;fr&#39;" in await bad.text()
