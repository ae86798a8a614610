"""Table rows of a learner's state (competency_states, competency_certifications).

Pure: the same state always gives the same rows.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Any

from projections.competency.model import CompetencyState, LearnerState, ProgramCertification, StatementEvidence

__all__ = [
    "STATE_COLUMNS",
    "CERTIFICATION_COLUMNS",
    "MISMATCH_COLUMNS",
    "state_row",
    "state_rows",
    "certification_row",
    "certification_rows",
    "mismatch_rows",
]

STATE_COLUMNS = [
    "tenant", "learner", "competency", "status", "level", "level_rank", "best_score",
    "latest_score", "evidence_count", "first_mastered_at", "rule_version",
]
CERTIFICATION_COLUMNS = [
    "tenant", "learner", "program", "program_version", "earned", "earned_at", "statement_ids", "known_at",
]
MISMATCH_COLUMNS = [
    "tenant", "statement_id", "activity", "platform", "learner", "timestamp", "score", "mastery_score",
    "statement_mastery", "passed",
]


def state_row(tenant: str, learner: str, c: CompetencyState) -> tuple[Any, ...]:
    return (
        tenant, learner, c.competency, c.status, c.level,
        c.attainments[-1].level_rank if c.attainments else 0,  # attainments are kept lowest level first
        c.best_score, c.latest_score, c.evidence_count, _time(c.first_mastered_at), c.rule_version,
    )


def certification_row(tenant: str, learner: str, p: ProgramCertification) -> tuple[Any, ...]:
    # statement ids as text: the uuid[] column parses them
    return (
        tenant, learner, p.program, p.program_version, p.earned, _time(p.earned_at), list(p.statement_ids),
        _time(p.known_at),
    )


def state_rows(tenant: str, state: LearnerState) -> list[tuple[Any, ...]]:
    return [state_row(tenant, state.learner, c) for c in state.competencies.values()]


def certification_rows(tenant: str, state: LearnerState) -> list[tuple[Any, ...]]:
    return [certification_row(tenant, state.learner, p) for p in state.certifications.values()]


def mismatch_rows(tenant: str, item: StatementEvidence) -> list[tuple[Any, ...]]:
    """Rows of ``competency_mastery_mismatches``: the statement's aligned
    activities judged with a masteryScore other than its own (once per
    activity, whatever the competences and levels it expands to)."""
    rows: dict[str, tuple[Any, ...]] = {}
    for e in item.evidence:
        if e.mastery_differs and e.source == "alignment" and e.activity not in rows:
            rows[e.activity] = (
                tenant, item.statement_id, e.activity, e.platform or "", item.learner, _time(e.timestamp), e.score,
                e.mastery_score, e.statement_mastery_score, e.passed,
            )
    return list(rows.values())


@lru_cache(maxsize=65_536)  # the same times recur across a learner's rows and learners
def _time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)
