"""What a certification report's files say, in English or Vietnamese (pure).

English is the files' machine form, as it always was: the column names are
identifiers (``unit``, ``status``...), coded values stay codes
(``in_progress``), dates and instants ISO 8601.  A report in Vietnamese is for
the officials who open it in a spreadsheet: the header row, the sheet names
and the heading's labels are the console's words (every text is a message of
the console's catalogue, :data:`lrs.console.i18n.MESSAGES`); each coded column
keeps its codes for machines and has a text column beside it
(``kind_text``, ``with_descendants_text``, ``status_text``); what is missing
and an erased learner are worded as the unit page words them; the roster's instant is written as the
console writes it (``13/04/2026 10:05 UTC``) and the target's due date is a
date (the XLSX shows it ``31/12/2025``, the CSV keeps ISO 8601 for Excel to
read in any locale).
"""

from __future__ import annotations

from datetime import date
from typing import Any, Iterable

from lrs.console.dates import instant_text
from lrs.console.gap_reasons import gap_reason
from lrs.console.i18n import MESSAGES, translator
from projections.units.display import ERASED

__all__ = [
    "DEFAULT_LANGUAGE",
    "LANGUAGES",
    "TEXT_COLUMNS",
    "columns",
    "header",
    "heading",
    "learner_values",
    "missing_text",
    "sheet_name",
    "summary_values",
]

LANGUAGES = ("vi", "en")
DEFAULT_LANGUAGE = "en"
# A coded column -> the column of its words beside it (Vietnamese files only).
TEXT_COLUMNS = {"kind": "kind_text", "with_descendants": "with_descendants_text", "status": "status_text"}


def columns(codes: tuple[str, ...], language: str) -> tuple[str, ...]:
    """A part's columns in ``language``: English's as they are; each coded
    column followed by its text column otherwise."""
    if language == DEFAULT_LANGUAGE:
        return codes
    return tuple(name for code in codes for name in (code, TEXT_COLUMNS.get(code)) if name is not None)


def header(names: Iterable[str], language: str) -> list[str]:
    """The header row: each column's name in ``language``."""
    t = translator(language)
    return [t(f"report_column_{name}") for name in names]


def sheet_name(part: str, language: str) -> str:
    return translator(language)(f"report_sheet_{part.replace('-', '_')}")


def heading(report: Any, language: str) -> list[tuple[str, str]]:
    """The lines above an XLSX sheet's header: what the report is of."""
    t = translator(language)
    roster_as_of = report.roster_as_of or ""
    if language != DEFAULT_LANGUAGE:
        roster_as_of = instant_text(roster_as_of, language)
    return [
        (t("report_heading_programme"), report.program),
        (t("report_heading_programme_version"), report.program_version),
        (t("report_heading_unit"), report.unit),
        (t("report_heading_rows_by"), _word("report_by_", report.by, language)),
        (t("report_heading_log_position"), str(report.position)),
        (t("report_heading_roster_as_of"), roster_as_of),
    ]


def _word(prefix: str, code: str, language: str) -> str:
    """A code's word in ``language`` (the catalogue's ``prefix + code``); an unknown code as it is."""
    return MESSAGES.get(prefix + code, {}).get(language, code)


def _in_language(codes: tuple[str, ...], values: tuple[Any, ...], language: str, **changed: Any) -> tuple[Any, ...]:
    named = {**dict(zip(codes, values)), **changed}
    return tuple(named[name] for name in columns(codes, language))


def summary_values(codes: tuple[str, ...], row: Any, language: str) -> tuple[Any, ...]:
    """A summary row's cells in ``language`` (``row``: reports.SummaryRow)."""
    if language == DEFAULT_LANGUAGE:
        return row.values()
    return _in_language(
        codes, row.values(), language,
        kind_text=_word("kind_", row.kind, language),
        with_descendants_text=translator(language)("yes" if row.with_descendants else "no"),
        target_due=date.fromisoformat(row.target_due) if row.target_due else "",
    )


def learner_values(codes: tuple[str, ...], row: Any, language: str) -> tuple[Any, ...]:
    """A not-certified learner's cells in ``language`` (``row``: reports.LearnerRow)."""
    if language == DEFAULT_LANGUAGE:
        return row.values()
    return _in_language(
        codes, row.values(), language,
        learner=translator(language)("erased") if row.learner == ERASED else row.learner,
        status_text=_word("status_", row.status, language),
        missing=missing_text(row.gaps, language) if row.gaps else row.missing,
    )


def missing_text(gaps: Iterable[Any], language: str = DEFAULT_LANGUAGE) -> str:
    """What a learner still misses (standing.Gap each), one gap after another:
    ``1.1 (needs CB2): best score 0.65 < mastery score 0.70; 6.2 (needs CB1): no evidence``.
    English is the projection's own reason; another language words the
    gap's reason code as the unit page does (lrs.console.gap_reasons)."""
    needs = translator(language)("needs")
    return "; ".join(
        f"{gap.code or gap.competency} ({needs} {gap.level_needed}): "
        + (gap.reason if language == DEFAULT_LANGUAGE else gap_reason(gap.json(), language))
        for gap in gaps
    )
