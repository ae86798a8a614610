"""Certification reports in English and Vietnamese (projections/competency/
reports.py, report_words.py): English byte for byte as main's builders wrote
it (report_snapshots/), Vietnamese with the console's words beside the codes."""

from __future__ import annotations

import csv
import io
import re
import zipfile
from dataclasses import replace
from datetime import date, datetime
from pathlib import Path

from openpyxl import load_workbook

from projections.competency.reports import LEARNER_COLUMNS, SUMMARY_COLUMNS, to_csv, to_xlsx
from projections.competency.standing import Attempt, Gap
from tests.unit.report_fixture import REPORT

SNAPSHOTS = Path(__file__).parent / "report_snapshots"
BOM = "\ufeff"

ATTEMPT = Attempt("s1", "2026-01-01T00:00:00Z", "https://example.org/a", "passed", "CB2", True, True, 0.65, 0.7, "Passed", None)
GAPS = (
    Gap("https://example.org/c/1.1", "1.1", "CB2", None, ATTEMPT, "score_below_mastery", "best score 0.65 < mastery score 0.70"),
)
NO_EVIDENCE = (
    Gap("https://example.org/c/1.1", "1.1", "CB2", None, None, "no_evidence", "no evidence"),
    Gap("https://example.org/c/4.2", "4.2", "CB1", None, None, "no_evidence", "no evidence"),
)
# The fixture with what is missing given as gaps too (as report_query.py gathers it).
WITH_GAPS = replace(REPORT, not_certified=(
    replace(REPORT.not_certified[0], gaps=GAPS), replace(REPORT.not_certified[1], gaps=NO_EVIDENCE),
    REPORT.not_certified[2],
))


def _rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def test_english_csv_is_byte_for_byte_what_main_wrote() -> None:
    for report in (REPORT, WITH_GAPS):
        for part, name in (("summary", "summary-en.csv"), ("not-certified", "not-certified-en.csv")):
            expected = (SNAPSHOTS / name).read_bytes()
            assert to_csv(report, part).encode("utf-8") == expected, part
            assert to_csv(report, part, "en").encode("utf-8") == expected, part
    assert not (SNAPSHOTS / "summary-en.csv").read_bytes().startswith(BOM.encode())  # English never had a BOM


_SAVED_AT = re.compile(rb"<dcterms:(created|modified)[^>]*>[^<]*</dcterms:\1>")


def _members(xlsx: bytes) -> dict[str, bytes]:
    """The workbook's files; docProps/core.xml without the save time openpyxl writes into every file."""
    with zipfile.ZipFile(io.BytesIO(xlsx)) as book:
        members = {name: book.read(name) for name in book.namelist()}
    members["docProps/core.xml"] = _SAVED_AT.sub(rb"<\1/>", members["docProps/core.xml"])
    return members


def test_english_xlsx_is_byte_for_byte_what_main_wrote_but_for_its_save_time() -> None:
    expected = _members((SNAPSHOTS / "report-en.xlsx").read_bytes())
    assert len(expected) > 5 and any(name.startswith("xl/worksheets/") for name in expected)
    for written in (to_xlsx(REPORT), to_xlsx(WITH_GAPS, "en")):
        assert _members(written) == expected


def test_vietnamese_csv_summary_has_a_bom_translated_headers_and_words_beside_the_codes() -> None:
    text = to_csv(WITH_GAPS, "summary", "vi")
    assert text.startswith(BOM) and text.count(BOM) == 1
    header, *rows = _rows(text[1:])
    assert header == [
        "Mã đơn vị", "Tên đơn vị", "Mã loại đơn vị", "Loại đơn vị", "Mã đơn vị cấp trên", "Mã gồm đơn vị trực thuộc",
        "Gồm đơn vị trực thuộc", "Tổng số", "Đạt chứng nhận", "Tỷ lệ", "Chỉ tiêu", "Hạn chỉ tiêu", "Số cần đạt", "Còn thiếu",
    ]
    named = [dict(zip(header, row)) for row in rows]
    assert [(r["Mã loại đơn vị"], r["Loại đơn vị"]) for r in named] == [
        ("ministry", "Bộ"), ("agency", "Cơ quan"), ("agency", "Cơ quan"), ("unit", "Đơn vị"),
    ]
    assert [(r["Mã gồm đơn vị trực thuộc"], r["Gồm đơn vị trực thuộc"]) for r in named][-2:] == [
        ("true", "có"), ("false", "không"),
    ]
    # the numbers and the ISO date stay as the English file has them (a CSV is read in any locale)
    english = _rows(to_csv(WITH_GAPS, "summary"))
    for row, english_row in zip(rows, english[1:]):
        assert [row[header.index(h)] for h in ("Mã đơn vị", "Tổng số", "Tỷ lệ", "Hạn chỉ tiêu", "Còn thiếu")] == [
            english_row[SUMMARY_COLUMNS.index(c)] for c in ("unit", "headcount", "rate", "target_due", "gap")
        ]


def test_vietnamese_csv_not_certified_words_the_status_what_is_missing_and_the_erased() -> None:
    text = to_csv(WITH_GAPS, "not-certified", "vi")
    assert text.startswith(BOM)
    header, *rows = _rows(text[1:])
    assert header == [
        "Học viên", "Mã đơn vị", "Tên đơn vị", "Mã cơ quan", "Mã trạng thái", "Trạng thái", "Nội dung còn thiếu", "Khóa học viên",
    ]
    assert [(r[4], r[5]) for r in rows] == [("in_progress", "đang học"), ("not_started", "chưa bắt đầu"), ("not_started", "chưa bắt đầu")]
    assert rows[0][6] == "1.1 (cần CB2): điểm cao nhất 0.65 < ngưỡng đạt 0.70"
    assert rows[1][6] == "1.1 (cần CB2): chưa có minh chứng; 4.2 (cần CB1): chưa có minh chứng"
    assert rows[2][6] == "1.1 (needs CB2): no evidence"  # no gaps given: the projection's words, never nothing
    assert rows[2][0] == "(đã xoá)" and rows[2][7] == REPORT.not_certified[2].key
    assert [r[0] for r in rows[:2]] == ["mbox:mailto:a@x.org", "mbox:mailto:b@x.org"]


def test_vietnamese_xlsx_has_translated_sheets_headers_heading_and_dates() -> None:
    book = load_workbook(io.BytesIO(to_xlsx(WITH_GAPS, "vi")))
    assert book.sheetnames == ["Tổng hợp", "Chưa đạt chứng nhận"]
    sheet = book["Tổng hợp"]
    heading = {row[0].value: row[1].value for row in sheet.iter_rows(max_row=6)}
    assert heading == {
        "Chương trình": REPORT.program, "Phiên bản chương trình": "2025.1", "Đơn vị": "mic",
        "Mỗi dòng là một": "cơ quan", "Vị trí nhật ký": "42", "Danh sách tính đến": "13/04/2026 10:05 UTC",
    }
    header = [c.value for c in sheet[8]]
    assert header[:4] == ["Mã đơn vị", "Tên đơn vị", "Mã loại đơn vị", "Loại đơn vị"]
    due = sheet.cell(row=9, column=header.index("Hạn chỉ tiêu") + 1)
    assert due.value == datetime(2025, 12, 31) and due.number_format == "dd/mm/yyyy"  # a date, shown 31/12/2025
    assert sheet.cell(row=9, column=header.index("Tỷ lệ") + 1).number_format == "0.0%"
    assert sheet.cell(row=9, column=header.index("Loại đơn vị") + 1).value == "Bộ"
    learners = list(book["Chưa đạt chứng nhận"].iter_rows(min_row=8, values_only=True))
    assert learners[0][:6] == ("Học viên", "Mã đơn vị", "Tên đơn vị", "Mã cơ quan", "Mã trạng thái", "Trạng thái")
    assert learners[1][4:6] == ("in_progress", "đang học")


def test_every_column_has_a_header_in_both_languages() -> None:
    from lrs.console.i18n import MESSAGES
    from projections.competency.report_words import TEXT_COLUMNS

    for column in (*SUMMARY_COLUMNS, *LEARNER_COLUMNS, *TEXT_COLUMNS.values()):
        words = MESSAGES[f"report_column_{column}"]
        assert words["en"] == column and words["vi"] and words["vi"] != column, column
    assert date.fromisoformat(REPORT.summary[0].target_due or "") == date(2025, 12, 31)
