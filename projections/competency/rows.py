"""Table rows of a learner's state (competency_states, competency_certifications).

Pure: the same state always gives the same rows.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Any

from projections.competency.model import CompetencyState, LearnerState, ProgramCertification

__all__ = ["STATE_COLUMNS", "CERTIFICATION_COLUMNS", "state_row", "state_rows", "certification_row", "certification_rows"]

STATE_COLUMNS = [
    "tenant", "learner", "competency", "status", "level", "level_rank", "best_score",
    "latest_score", "evidence_count", "first_mastered_at", "rule_version",
]
CERTIFICATION_COLUMNS = ["tenant", "learner", "program", "program_version", "earned", "earned_at", "statement_ids"]


def state_row(tenant: str, learner: str, c: CompetencyState) -> tuple[Any, ...]:
    return (
        tenant, learner, c.competency, c.status, c.level,
        c.attainments[-1].level_rank if c.attainments else 0,  # attainments are kept lowest level first
        c.best_score, c.latest_score, c.evidence_count, _time(c.first_mastered_at), c.rule_version,
    )


def certification_row(tenant: str, learner: str, p: ProgramCertification) -> tuple[Any, ...]:
    # statement ids as text: the uuid[] column parses them
    return (tenant, learner, p.program, p.program_version, p.earned, _time(p.earned_at), list(p.statement_ids))


def state_rows(tenant: str, state: LearnerState) -> list[tuple[Any, ...]]:
    return [state_row(tenant, state.learner, c) for c in state.competencies.values()]


def certification_rows(tenant: str, state: LearnerState) -> list[tuple[Any, ...]]:
    return [certification_row(tenant, state.learner, p) for p in state.certifications.values()]


@lru_cache(maxsize=65_536)  # the same times recur across a learner's rows and learners
def _time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)
