"""Where a learner stands in a programme, and why, in the officials' terms.

Pure: from a learner's state (or none: a rostered learner without evidence)
and a programme to a :class:`Standing`: certified, in progress or not
started, and for each requirement not met, what is missing and why: the
level needed, the level reached, and the best attempt with its score against
the masteryScore that judged it ("best score 0.65 < mastery score 0.70").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from projections.competency.catalog import Catalog
from projections.competency.frameworks import Program
from projections.competency.model import Evidence, LearnerState

__all__ = ["REASON_CODES", "STATUSES", "Attempt", "Gap", "Standing", "standing", "status_of"]

Status = Literal["certified", "in_progress", "not_started"]
STATUSES: tuple[Status, ...] = ("certified", "in_progress", "not_started")

# Why a requirement falls short, as a code (a gap's ``reason_code``; its
# ``reason`` says the same in English).  The values a code's wording needs
# are the gap's own fields (docs/competency.md).
REASON_CODES: tuple[str, ...] = (
    "no_evidence",             # no evidence
    "reached_below_level",     # reached {level_reached} below the level needed ({level_needed})
    "evidence_below_level",    # evidence only below the level needed ({level_needed})
    "score_below_mastery",     # best score {best_attempt.score} < mastery score {best_attempt.mastery_score}
    "failed",                  # failed
    "failed_with_score",       # failed with score {best_attempt.score}
    "passed_not_completed",    # passed, not completed (moveOn {best_attempt.move_on})
    "completed_not_passed",    # completed, not passed (moveOn {best_attempt.move_on})
    "not_completed",           # not completed (moveOn {best_attempt.move_on}: Completed)
    "scored_not_judged",       # scored, not judged (no masteryScore)
    "not_yet_met",             # not yet met
)


@dataclass(frozen=True, slots=True)
class Attempt:
    """The evidence that came closest to meeting a requirement."""

    statement_id: str
    timestamp: str
    activity: str
    verb: str
    level: str | None
    passed: bool | None
    completed: bool
    score: float | None
    mastery_score: float | None
    move_on: str
    platform: str | None

    def json(self) -> dict[str, Any]:
        return {
            "statement_id": self.statement_id, "timestamp": self.timestamp, "activity": self.activity,
            "verb": self.verb, "level": self.level, "passed": self.passed, "completed": self.completed,
            "score": self.score, "mastery_score": self.mastery_score, "move_on": self.move_on,
            "platform": self.platform,
        }


@dataclass(frozen=True, slots=True)
class Gap:
    """A requirement of the programme not met yet."""

    competency: str
    code: str | None
    level_needed: str
    level_reached: str | None
    best_attempt: Attempt | None
    reason_code: str
    reason: str

    def json(self) -> dict[str, Any]:
        return {
            "competency": self.competency, "code": self.code, "level_needed": self.level_needed,
            "level_reached": self.level_reached,
            "best_attempt": None if self.best_attempt is None else self.best_attempt.json(),
            "reason_code": self.reason_code, "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class Standing:
    status: Status
    certified_at: str | None
    missing: tuple[Gap, ...]

    def json(self) -> dict[str, Any]:
        return {
            "status": self.status, "certified_at": self.certified_at,
            "missing": [gap.json() for gap in self.missing],
        }


def status_of(earned: bool | None) -> Status:
    """The status from a learner's certification row: earned, not earned
    (evidence towards the programme), or no row (no such evidence)."""
    if earned is None:
        return "not_started"
    return "certified" if earned else "in_progress"


def standing(state: LearnerState | None, program: Program, catalog: Catalog) -> Standing:
    """Where the learner stands in ``program`` (``state`` None: no evidence)."""
    key = f"{program.iri}|{program.version}"
    held = state.certifications.get(key) if state is not None else None
    if held is not None and held.earned:
        return Standing("certified", held.earned_at, ())
    gaps = []
    for requirement in program.requirements:
        info = catalog.competencies.get(requirement.competency)
        needed = info.rank(requirement.level) if info else 0
        competence = state.competencies.get(requirement.competency) if state is not None else None
        if competence is not None and any(a.level_rank >= needed for a in competence.attainments):
            continue
        evidence = [e for e in state.evidence if e.competency == requirement.competency] if state is not None else []
        reached = competence.level if competence is not None else None
        best = _best(evidence, needed)
        reason_code, reason = _reason(best, needed, requirement.level, reached)
        gaps.append(Gap(
            competency=requirement.competency,
            code=info.code if info else None,
            level_needed=requirement.level,
            level_reached=reached,
            best_attempt=None if best is None else _attempt(best),
            reason_code=reason_code,
            reason=reason,
        ))
    status: Status = "in_progress" if held is not None else "not_started"
    return Standing(status, None, tuple(gaps))


def _best(evidence: list[Evidence], needed: int) -> Evidence | None:
    """The attempt closest to meeting the requirement: at a level that could
    meet it if there is one, then passed, scored (the highest score),
    completed, the latest."""
    if not evidence:
        return None
    return max(evidence, key=lambda e: (
        e.level_rank >= needed, e.passed is True, e.score is not None, -1.0 if e.score is None else e.score,
        e.completed, e.timestamp,
    ))


def _attempt(e: Evidence) -> Attempt:
    return Attempt(
        statement_id=e.statement_id, timestamp=e.timestamp, activity=e.activity, verb=e.verb, level=e.level,
        passed=e.passed, completed=e.completed, score=e.score, mastery_score=e.mastery_score, move_on=e.move_on,
        platform=e.platform,
    )


def _reason(best: Evidence | None, needed: int, needed_code: str, reached: str | None) -> tuple[str, str]:
    """The reason's code (one of :data:`REASON_CODES`) and its English words."""
    if best is None:
        return "no_evidence", "no evidence"
    if best.level_rank < needed:
        if reached:
            return "reached_below_level", f"reached {reached} below the level needed ({needed_code})"
        return "evidence_below_level", f"evidence only below the level needed ({needed_code})"
    if best.score is not None and best.mastery_score is not None and best.score < best.mastery_score:
        return "score_below_mastery", f"best score {best.score:.2f} < mastery score {best.mastery_score:.2f}"
    if best.passed is False:
        if best.score is None:
            return "failed", "failed"
        return "failed_with_score", f"failed with score {best.score:.2f}"
    if best.passed and not best.completed and best.move_on == "CompletedAndPassed":
        return "passed_not_completed", "passed, not completed (moveOn CompletedAndPassed)"
    if best.completed and not best.passed and best.move_on in ("Passed", "CompletedAndPassed"):
        return "completed_not_passed", f"completed, not passed (moveOn {best.move_on})"
    if not best.completed and best.move_on == "Completed":  # passed or not, only completion meets it
        return "not_completed", "not completed (moveOn Completed)"
    if best.passed is None and not best.completed:
        return "scored_not_judged", "scored, not judged (no masteryScore)"
    return "not_yet_met", "not yet met"
