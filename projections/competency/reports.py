"""Per-agency and per-unit certification reports as CSV and XLSX.

Pure: a :class:`Report` (gathered by report_query.py) in, text or bytes
out.  A report has two parts:

- the summary: one row for the unit asked for (with everything below it),
  then one per agency (``by="agency"``: each with its units) or per unit
  (``by="unit"``: each unit's own members, so the rows add up to the total),
  with headcount, certified, rate, the target in force, the learners the
  target needs, and the gap (how many more must be certified);
- the not-certified list: every rostered learner below the unit who is not
  certified, with the unit and agency, the status (in progress / not
  started) and what is missing and why.

CSV carries one part per file (``part``); XLSX carries both, one sheet each.
Rates are fractions (0.4 is 40 %); XLSX formats them as percentages.

Either file is in English (``language="en"``, the default: the machine form,
unchanged) or in Vietnamese (``"vi"``): translated headers and sheet names,
a text column beside each coded one, dates as the console writes them
(report_words.py), and a CSV that starts with a byte order mark, without
which Excel reads UTF-8 as the Windows code page and garbles Vietnamese.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, replace
from typing import Any, Literal, Mapping

from openpyxl import Workbook
from openpyxl.utils import get_column_letter

from projections.competency import report_words
from projections.competency.report_words import DEFAULT_LANGUAGE

__all__ = [
    "BY",
    "LANGUAGES",
    "PARTS",
    "SUMMARY_COLUMNS",
    "LEARNER_COLUMNS",
    "SummaryRow",
    "LearnerRow",
    "Report",
    "to_csv",
    "to_xlsx",
]

BY = ("agency", "unit")
PARTS = ("summary", "not-certified")
LANGUAGES = report_words.LANGUAGES
BOM = "\ufeff"  # starts a CSV in Vietnamese (Excel's cue that the file is UTF-8)
XLSX_DATE = "dd/mm/yyyy"  # a date cell of an XLSX in Vietnamese, as the console writes dates
SUMMARY_COLUMNS = (
    "unit", "name", "kind", "parent", "with_descendants", "headcount", "certified", "rate",
    "target_rate", "target_due", "target_needed", "gap",
)
# learner: the identifier to show ("(erased)" once erased); learner_key: the
# key the projection knows the learner by (the pseudonym key when sealed).
LEARNER_COLUMNS = ("learner", "unit", "unit_name", "agency", "status", "missing", "learner_key")


@dataclass(frozen=True, slots=True)
class SummaryRow:
    unit: str
    name: str
    kind: str
    parent: str | None
    with_descendants: bool
    headcount: int
    certified: int
    rate: float | None
    target_rate: float | None
    target_due: str | None  # the date the target in force is due by (None: no date)
    target_needed: int | None
    gap: int | None  # learners still to certify to meet the target (0 when met)

    def values(self) -> tuple[Any, ...]:
        return (
            self.unit, self.name, self.kind, self.parent or "", self.with_descendants, self.headcount,
            self.certified, self.rate, self.target_rate, self.target_due or "", self.target_needed, self.gap,
        )


@dataclass(frozen=True, slots=True)
class LearnerRow:
    learner: str
    unit: str
    unit_name: str
    agency: str | None
    status: str  # in_progress | not_started
    missing: str  # "1.1 (needs CB2): best score 0.65 < mastery score 0.70; ..."
    key: str = ""  # the projection's key (learner holds it too until with_identifiers)
    gaps: tuple[Any, ...] = ()  # what is missing (standing.Gap each), for ``missing`` in another language

    def values(self) -> tuple[Any, ...]:
        return (self.learner, self.unit, self.unit_name, self.agency or "", self.status, self.missing, self.key or self.learner)


@dataclass(frozen=True, slots=True)
class Report:
    program: str
    program_version: str
    unit: str
    by: Literal["agency", "unit"]
    position: int
    roster_as_of: str | None
    summary: tuple[SummaryRow, ...]
    not_certified: tuple[LearnerRow, ...]


def with_identifiers(report: Report, shown: Mapping[str, Any]) -> Report:
    """``report`` with each not-certified learner shown by ``shown[key].text``
    (the clear identifier, or "(erased)") and listed in that order; the key
    moves to ``learner_key``."""
    rows = [
        replace(row, learner=shown[row.learner].text, key=row.learner) if row.learner in shown else row
        for row in report.not_certified
    ]
    rows.sort(key=lambda row: (row.learner, row.key))
    return replace(report, not_certified=tuple(rows))


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.6g}"
    return value


def _part(report: Report, part: str, language: str) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
    """A part's columns and rows in ``language``."""
    if part == "summary":
        codes, rows, values = SUMMARY_COLUMNS, report.summary, report_words.summary_values
    elif part == "not-certified":
        codes, rows, values = LEARNER_COLUMNS, report.not_certified, report_words.learner_values
    else:
        raise ValueError(f"part must be one of {', '.join(PARTS)}, got {part!r}")
    return report_words.columns(codes, language), [values(codes, row, language) for row in rows]


def to_csv(report: Report, part: str = "summary", language: str = DEFAULT_LANGUAGE) -> str:
    """One part of the report as CSV text (a header row, then the rows)."""
    names, rows = _part(report, part, language)
    out = io.StringIO()
    if language != DEFAULT_LANGUAGE:
        out.write(BOM)
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(report_words.header(names, language))
    writer.writerows([_cell(v) for v in row] for row in rows)
    return out.getvalue()


def to_xlsx(report: Report, language: str = DEFAULT_LANGUAGE) -> bytes:
    """The report as an XLSX workbook: sheets "Summary" and "Not certified"
    (in Vietnamese "Tổng hợp" and "Chưa đạt chứng nhận"), each starting with
    the report's heading, then a header row and the rows."""
    book = Workbook()
    summary = book.active
    summary.title = report_words.sheet_name("summary", language)
    learners = book.create_sheet(report_words.sheet_name("not-certified", language))
    heading = report_words.heading(report, language)
    for sheet, part in ((summary, "summary"), (learners, "not-certified")):
        columns, rows = _part(report, part, language)
        names = report_words.header(columns, language)
        for label, value in heading:
            sheet.append([label, value])
        sheet.append([])
        sheet.append(names)
        for values in rows:
            sheet.append(["" if v is None else v for v in values])
        for index, name in enumerate(names, start=1):
            width = max([len(name), *(len(str(v)) for v in (r[index - 1] for r in rows))] or [len(name)])
            sheet.column_dimensions[get_column_letter(index)].width = min(60, width + 2)
    first = len(heading) + 3  # the first data row
    columns = report_words.columns(SUMMARY_COLUMNS, language)
    formats = [("rate", "0.0%"), ("target_rate", "0.0%")]
    if language != DEFAULT_LANGUAGE:
        formats.append(("target_due", XLSX_DATE))
    for column, number_format in formats:
        letter = get_column_letter(columns.index(column) + 1)
        for row in range(first, first + len(report.summary)):
            summary[f"{letter}{row}"].number_format = number_format
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
