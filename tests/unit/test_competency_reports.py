"""Certification reports as CSV and XLSX (projections/competency/reports.py)."""

from __future__ import annotations

import csv
import io

import pytest
from openpyxl import load_workbook

from dataclasses import replace

from projections.competency.reports import (
    LEARNER_COLUMNS, SUMMARY_COLUMNS, LearnerRow, Report, SummaryRow, to_csv, to_xlsx, with_identifiers,
)

REPORT = Report(
    program="https://example.org/programs/p", program_version="1", unit="mic", by="agency", position=42,
    roster_as_of="2026-01-01T00:00:00.000000Z",
    summary=(
        SummaryRow("mic", "Ministry", "ministry", None, True, 10, 3, 0.3, 0.4, "2025-12-31", 4, 1),
        SummaryRow("mic-a", "Agency A, \"north\"", "agency", "mic", True, 0, 0, None, 0.4, "2025-12-31", 0, 0),
    ),
    not_certified=(
        LearnerRow("mbox:mailto:a@x.org", "mic-a-1", "Division 1", "mic-a", "in_progress",
                   "1.1 (needs CB2): best score 0.65 < mastery score 0.70"),
        LearnerRow("mbox:mailto:b@x.org", "mic-a-1", "Division 1", "mic-a", "not_started", "1.1 (needs CB2): no evidence"),
    ),
)


def _trim(row: tuple) -> list:
    """A sheet row without the empty cells past its last value (rows are as wide as the widest)."""
    values = list(row)
    while values and values[-1] is None:
        values.pop()
    return values


def test_csv_summary_has_a_header_and_one_row_per_unit_with_empty_cells_for_none() -> None:
    rows = list(csv.reader(io.StringIO(to_csv(REPORT, "summary"))))
    assert rows[0] == list(SUMMARY_COLUMNS)
    assert rows[1] == ["mic", "Ministry", "ministry", "", "true", "10", "3", "0.3", "0.4", "2025-12-31", "4", "1"]
    assert rows[2][1] == 'Agency A, "north"' and rows[2][7] == ""  # quoted text, no rate for no headcount


def test_csv_not_certified_part_lists_the_learners_and_why() -> None:
    rows = list(csv.reader(io.StringIO(to_csv(REPORT, "not-certified"))))
    assert rows[0] == list(LEARNER_COLUMNS)
    assert [r[0] for r in rows[1:]] == ["mbox:mailto:a@x.org", "mbox:mailto:b@x.org"]
    assert rows[1][5] == "1.1 (needs CB2): best score 0.65 < mastery score 0.70"
    with pytest.raises(ValueError, match="part must be one of"):
        to_csv(REPORT, "everything")


def test_xlsx_holds_both_parts_with_the_heading_and_rates_as_percentages() -> None:
    book = load_workbook(io.BytesIO(to_xlsx(REPORT)))
    assert book.sheetnames == ["Summary", "Not certified"]
    summary = [_trim(r) for r in book["Summary"].iter_rows(values_only=True)]
    assert summary[0] == ["programme", "https://example.org/programs/p"]
    assert summary[4] == ["log position", "42"]
    header = summary.index(list(SUMMARY_COLUMNS))
    assert summary[header + 1] == ["mic", "Ministry", "ministry", None, True, 10, 3, 0.3, 0.4, "2025-12-31", 4, 1]
    assert summary[header + 2][:8] == ["mic-a", 'Agency A, "north"', "agency", "mic", True, 0, 0, None]
    rate_cell = book["Summary"].cell(row=header + 2, column=SUMMARY_COLUMNS.index("rate") + 1)
    assert rate_cell.number_format == "0.0%"
    learners = [_trim(r) for r in book["Not certified"].iter_rows(values_only=True)]
    start = learners.index(list(LEARNER_COLUMNS))
    assert [r[0] for r in learners[start + 1:]] == ["mbox:mailto:a@x.org", "mbox:mailto:b@x.org"]


def test_learners_shown_by_identifier_keep_their_key_and_erased_ones_say_so() -> None:
    from projections.units.display import Shown

    first, second = "account:https://lrs.invalid/pseudonym|" + "a" * 32, "account:https://lrs.invalid/pseudonym|" + "b" * 32
    sealed = replace(REPORT, not_certified=(
        replace(REPORT.not_certified[0], learner=first), replace(REPORT.not_certified[1], learner=second),
    ))
    shown = with_identifiers(sealed, {
        first: Shown(first, "mbox:mailto:z@x.org", False), second: Shown(second, None, True),
    })
    rows = list(csv.DictReader(io.StringIO(to_csv(shown, "not-certified"))))
    # listed by what is shown; the erased learner is "(erased)", never the pseudonym key as its identifier
    assert [(r["learner"], r["learner_key"], r["status"]) for r in rows] == [
        ("(erased)", second, "not_started"), ("mbox:mailto:z@x.org", first, "in_progress"),
    ]
    # unsealed: the key is the identifier
    plain = list(csv.DictReader(io.StringIO(to_csv(REPORT, "not-certified"))))
    assert [(r["learner"], r["learner_key"]) for r in plain] == [("mbox:mailto:a@x.org",) * 2, ("mbox:mailto:b@x.org",) * 2]
