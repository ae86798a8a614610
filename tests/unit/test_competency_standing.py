"""Where a learner stands in a programme and why (projections/competency/standing.py)."""

from __future__ import annotations

from projections.competency.model import LearnerState
from projections.competency.policy import VERB_FAILED, VERB_PASSED, fold
from projections.competency.standing import standing, status_of
from tests.unit.test_competency_fold import CATALOG, COURSE, LEARNER, VN, course_events, event

(PROGRAM,) = CATALOG.programs


def test_a_learner_without_evidence_is_not_started_and_misses_every_requirement_for_lack_of_evidence() -> None:
    result = standing(None, PROGRAM, CATALOG)
    assert result.status == "not_started" and result.certified_at is None
    assert [(g.code, g.level_needed, g.reason, g.best_attempt) for g in result.missing] == [
        (r.competency.rsplit("/", 1)[1], r.level, "no evidence", None) for r in PROGRAM.requirements
    ]


def test_a_certified_learner_has_nothing_missing() -> None:
    result = standing(fold(LEARNER, course_events(), CATALOG), PROGRAM, CATALOG)
    assert (result.status, result.certified_at, result.missing) == ("certified", "2025-03-01T09:40:00.000000Z", ())


def test_each_missing_requirement_names_its_best_attempt_and_why_it_falls_short() -> None:
    events = course_events()[1:-1]  # searching not passed, using-ai-assistants missing
    events += [
        event(30, f"{COURSE}/modules/searching", 300, VERB_PASSED, {"success": True, "score": {"scaled": 0.65}}),
        event(31, f"{COURSE}/modules/searching", 310, VERB_FAILED, {"success": False, "score": {"scaled": 0.4}}),
    ]
    state = fold(LEARNER, events, CATALOG)
    result = standing(state, PROGRAM, CATALOG)
    assert result.status == "in_progress"
    gaps = {g.code: g for g in result.missing}
    assert set(gaps) == {"1.1", "6.2"}
    searching = gaps["1.1"]
    assert searching.level_needed == "CB2" and searching.level_reached is None
    assert searching.best_attempt is not None and searching.best_attempt.score == 0.65
    assert searching.best_attempt.mastery_score == 0.7
    assert searching.reason == "best score 0.65 < mastery score 0.70"
    assert searching.reason_code == "score_below_mastery" and gaps["6.2"].reason_code == "no_evidence"
    assert result.json()["missing"][0]["reason_code"] == "score_below_mastery"
    assert gaps["6.2"].reason == "no evidence" and gaps["6.2"].best_attempt is None
    assert result.json()["missing"][0]["best_attempt"]["statement_id"] == searching.best_attempt.statement_id


def test_passed_but_not_completed_under_completed_and_passed_is_named() -> None:
    events = [e for e in course_events() if not (e.evidence[0].activity.endswith("searching") and e.evidence[0].completed)]
    result = standing(fold(LEARNER, events, CATALOG), PROGRAM, CATALOG)
    (gap,) = result.missing
    assert gap.reason == "passed, not completed (moveOn CompletedAndPassed)"
    assert gap.reason_code == "passed_not_completed"


def test_passed_but_not_completed_under_completed_is_named() -> None:
    # "online-communication" (2.1) asks for completion alone; the learner only passed it.
    module = f"{COURSE}/modules/online-communication"
    events = [e for e in course_events() if not e.evidence[0].activity == module]
    events.append(event(50, module, 600, VERB_PASSED, {"success": True}))
    result = standing(fold(LEARNER, events, CATALOG), PROGRAM, CATALOG)
    (gap,) = result.missing
    assert (gap.code, gap.best_attempt.passed, gap.best_attempt.completed) == ("2.1", True, False)
    assert gap.reason == "not completed (moveOn Completed)"
    assert gap.reason_code == "not_completed"


def test_evidence_below_the_level_needed_says_so() -> None:
    # an objective at CB1 for 2.3, which needs TC1
    events = course_events() + [event(40, f"{VN}/2.3/levels/CB1", 500)]
    events = [e for e in events if not e.evidence[0].activity.endswith("e-government-services")]
    result = standing(fold(LEARNER, events, CATALOG), PROGRAM, CATALOG)
    (gap,) = result.missing
    assert (gap.code, gap.level_needed, gap.level_reached) == ("2.3", "TC1", "CB1")
    assert gap.reason == "reached CB1 below the level needed (TC1)"
    assert gap.reason_code == "reached_below_level"


def test_status_from_a_certification_row() -> None:
    assert [status_of(x) for x in (True, False, None)] == ["certified", "in_progress", "not_started"]
    assert standing(LearnerState(learner=LEARNER), PROGRAM, CATALOG).status == "not_started"
