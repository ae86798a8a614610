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
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, replace
from typing import Any, Literal, Mapping

from openpyxl import Workbook
from openpyxl.utils import get_column_letter

__all__ = [
    "BY",
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

    def heading(self) -> list[tuple[str, str]]:
        return [
            ("programme", self.program), ("programme version", self.program_version), ("unit", self.unit),
            ("rows by", self.by), ("log position", str(self.position)), ("roster as of", self.roster_as_of or ""),
        ]


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


def to_csv(report: Report, part: str = "summary") -> str:
    """One part of the report as CSV text (a header row, then the rows)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    if part == "summary":
        writer.writerow(SUMMARY_COLUMNS)
        writer.writerows([_cell(v) for v in row.values()] for row in report.summary)
    elif part == "not-certified":
        writer.writerow(LEARNER_COLUMNS)
        writer.writerows([_cell(v) for v in row.values()] for row in report.not_certified)
    else:
        raise ValueError(f"part must be one of {', '.join(PARTS)}, got {part!r}")
    return out.getvalue()


def to_xlsx(report: Report) -> bytes:
    """The report as an XLSX workbook: sheets "Summary" and "Not certified"
    (each starts with the report's heading, then a header row and the rows)."""
    book = Workbook()
    summary = book.active
    summary.title = "Summary"
    learners = book.create_sheet("Not certified")
    for sheet, columns, rows in (
        (summary, SUMMARY_COLUMNS, [row.values() for row in report.summary]),
        (learners, LEARNER_COLUMNS, [row.values() for row in report.not_certified]),
    ):
        for label, value in report.heading():
            sheet.append([label, value])
        sheet.append([])
        sheet.append(list(columns))
        for values in rows:
            sheet.append(["" if v is None else v for v in values])
        for index, name in enumerate(columns, start=1):
            width = max([len(name), *(len(str(v)) for v in (r[index - 1] for r in rows))] or [len(name)])
            sheet.column_dimensions[get_column_letter(index)].width = min(60, width + 2)
    first = len(report.heading()) + 3  # the first data row
    for column in ("rate", "target_rate"):
        letter = get_column_letter(SUMMARY_COLUMNS.index(column) + 1)
        for row in range(first, first + len(report.summary)):
            summary[f"{letter}{row}"].number_format = "0.0%"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
