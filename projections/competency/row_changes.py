"""The rows a learner's changed state rewrites, and the certifications it
earns or loses (projections/competency/store.py)."""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

from projections.competency.model import CompetencyState, LearnerState, ProgramCertification

Key = tuple[str, str]  # (tenant, learner)


def _columns(rows: Sequence[tuple[Any, ...]], width: int) -> list[list[Any]]:
    return [[row[i] for row in rows] for i in range(width)]


def _rewrite(
    tenant: str,
    learner: str,
    old: Mapping[str, Any],
    new: Mapping[str, Any],
    row: Callable[[str, str, Any], tuple[Any, ...]],
    key: Callable[[str, str, Any], tuple[str, ...]],
    deletes: list[tuple[str, ...]],
    rows: list[tuple[Any, ...]],
    differs: Callable[[Any, Any], bool] | None = None,
) -> None:
    """The table changes from one learner's ``old`` to ``new`` values (by
    competency, or by programme): rows whose content differs are deleted and
    written again, rows of values that are gone are deleted.  Whether a
    value's row differs is ``differs(was, now)`` when given (read from the
    values' fields: no old row built), else the two rows compared."""
    for name, now in new.items():
        was = old.get(name)
        if was is now:
            continue
        if was is not None and differs is not None:
            if not differs(was, now):
                continue
            deletes.append(key(tenant, learner, was))
            rows.append(row(tenant, learner, now))
            continue
        written = row(tenant, learner, now)
        if was is not None:
            if row(tenant, learner, was) == written:
                continue
            deletes.append(key(tenant, learner, was))
        rows.append(written)
    deletes.extend(key(tenant, learner, was) for name, was in old.items() if name not in new)


def _row_differs(was: CompetencyState, now: CompetencyState) -> bool:
    """Whether ``state_row`` of ``now`` differs from that of ``was`` (the
    same competency), read field by field, the count first (a new
    statement's evidence changes it, a voiding most often too).  A
    first-mastered time is compared as the string the row's time is parsed
    from: two strings of one instant would count as a change (the row
    written again as it was), never the other way round."""
    return (
        was.evidence_count != now.evidence_count
        or was.status != now.status
        or was.level != now.level
        or was.best_score != now.best_score
        or was.latest_score != now.latest_score
        or was.first_mastered_at != now.first_mastered_at
        or was.rule_version != now.rule_version
        or (was.attainments[-1].level_rank if was.attainments else 0)
        != (now.attainments[-1].level_rank if now.attainments else 0)
    )


def _competency_key(tenant: str, learner: str, state: CompetencyState) -> tuple[str, ...]:
    return (tenant, learner, state.competency)


def _program_key(tenant: str, learner: str, certification: ProgramCertification) -> tuple[str, ...]:
    return (tenant, learner, certification.program, certification.program_version)


def _earned_changes(key: Key, before: LearnerState, after: LearnerState) -> list[tuple[str, str, str, str, int]]:
    if after.certifications is before.certifications:  # a refold that kept them (most): nothing earned or lost
        return []
    was = {(c.program, c.program_version) for c in before.certifications.values() if c.earned}
    now = {(c.program, c.program_version) for c in after.certifications.values() if c.earned}
    return [(*key, p, v, 1) for p, v in sorted(now - was)] + [(*key, p, v, -1) for p, v in sorted(was - now)]
