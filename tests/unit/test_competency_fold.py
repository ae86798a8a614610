"""The fold: competency state, certification, voiding, and order independence."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from projections.competency.catalog import load_catalog
from projections.competency.model import (
    LearnerEvent,
    LearnerState,
    StatementEvidence,
    StatementVoided,
)
from projections.competency.policy import (
    VERB_COMPLETED,
    VERB_FAILED,
    VERB_PASSED,
    VERB_VOIDED,
    evolve,
    fold,
    interpret,
)

CATALOG = load_catalog()
VN = "https://lrs.example.org/competency/vn-tt02-2025/1.0/competences"
DC = "https://lrs.example.org/competency/digcomp/2.2/competences"
COURSE = "https://lrs.example.org/courses/civil-servant-basic-digital-skills"
PROGRAM_KEY = "https://lrs.example.org/competency/programs/civil-servant-basic-digital-skills|2025.1"
LEARNER = "mbox:mailto:learner@example.gov.vn"
OBJECTIVE = "http://adlnet.gov/expapi/activities/objective"


def sid(n: int) -> str:
    return str(uuid.UUID(int=n))


def at(minute: int) -> str:
    return f"2025-03-01T{8 + minute // 60:02d}:{minute % 60:02d}:00Z"


def event(
    n: int,
    activity: str,
    minute: int,
    verb: str = VERB_PASSED,
    result: dict[str, Any] | None = None,
    registration: str | None = None,
    context: dict[str, Any] | None = None,
) -> LearnerEvent:
    body: dict[str, Any] = {
        "id": sid(n),
        "actor": {"mbox": "mailto:learner@example.gov.vn"},
        "verb": {"id": verb},
        "object": {"id": activity, "definition": {"type": OBJECTIVE}} if activity.startswith(VN) or activity.startswith(DC) else {"id": activity},
        "timestamp": at(minute),
        "stored": "2025-04-01T00:00:00Z",
    }
    if result is not None:
        body["result"] = result
    if registration is not None or context is not None:
        body["context"] = {**({"registration": registration} if registration else {}), **(context or {})}
    parsed = interpret(body, CATALOG)
    assert parsed is not None
    return parsed


def void(n: int, target: int) -> StatementVoided:
    parsed = interpret(
        {
            "id": sid(n),
            "actor": {"mbox": "mailto:registrar@example.gov.vn"},
            "verb": {"id": VERB_VOIDED},
            "object": {"objectType": "StatementRef", "id": sid(target)},
            "timestamp": at(0),
            "stored": "2025-04-01T00:00:00Z",
        },
        CATALOG,
    )
    assert isinstance(parsed, StatementVoided)
    return parsed


def run(*events: LearnerEvent) -> LearnerState:
    return fold(LEARNER, events, CATALOG)


def encoded(state: LearnerState) -> bytes:
    return msgspec.json.encode(state, order="sorted")


# -- one competency ----------------------------------------------------------------


def test_no_evidence_means_no_competency_state() -> None:
    state = run()
    assert state.competencies == {} and state.certifications == {} and state.evidence == ()


def test_failure_is_in_progress_and_pass_is_mastered_at_its_level() -> None:
    competency = f"{VN}/6.1"
    failed = run(event(1, f"{competency}/levels/CB2", 10, VERB_FAILED, {"success": False, "score": {"scaled": 0.4}}))
    state = failed.competencies[competency]
    assert (state.status, state.level, state.evidence_count) == ("in_progress", None, 1)
    assert (state.best_score, state.latest_score, state.first_mastered_at) == (0.4, 0.4, None)

    passed = run(
        event(1, f"{competency}/levels/CB2", 10, VERB_FAILED, {"success": False, "score": {"scaled": 0.4}}),
        event(2, f"{competency}/levels/CB2", 20, VERB_PASSED, {"success": True, "score": {"scaled": 0.9}}),
        event(3, f"{competency}/levels/CB2", 30, VERB_FAILED, {"success": False, "score": {"scaled": 0.5}}),
    )
    state = passed.competencies[competency]
    assert (state.status, state.level, state.evidence_count) == ("mastered", "CB2", 3)
    assert (state.best_score, state.latest_score) == (0.9, 0.5)
    assert state.first_mastered_at == "2025-03-01T08:20:00.000000Z"
    assert state.first_evidence_at == "2025-03-01T08:10:00.000000Z"
    assert state.last_evidence_at == "2025-03-01T08:30:00.000000Z"
    assert [(a.level, a.statement_ids) for a in state.attainments] == [("CB2", (sid(2),))]


def test_level_reached_is_the_highest_attained_and_first_mastered_the_earliest() -> None:
    competency = f"{VN}/6.1"
    state = run(
        event(1, f"{competency}/levels/TC2", 50),
        event(2, f"{competency}/levels/CB1", 10),
        event(3, f"{competency}/levels/NC1", 40, VERB_FAILED),
    ).competencies[competency]
    assert (state.status, state.level, state.first_mastered_at) == ("mastered", "TC2", "2025-03-01T08:10:00.000000Z")
    assert [a.level for a in state.attainments] == ["CB1", "TC2"]


def test_completed_and_passed_needs_both_statements_and_records_both() -> None:
    competency = f"{VN}/1.1"  # module "searching": CompletedAndPassed, mastery 0.7
    only_passed = run(event(1, f"{COURSE}/modules/searching", 10, VERB_PASSED, {"success": True, "score": {"scaled": 0.8}}))
    assert only_passed.competencies[competency].status == "in_progress"
    both = run(
        event(1, f"{COURSE}/modules/searching", 10, VERB_PASSED, {"success": True, "score": {"scaled": 0.8}}),
        event(2, f"{COURSE}/modules/searching", 25, VERB_COMPLETED, {"completion": True}),
    )
    state = both.competencies[competency]
    assert (state.status, state.level, state.first_mastered_at) == ("mastered", "CB2", "2025-03-01T08:25:00.000000Z")
    assert state.attainments[0].statement_ids == tuple(sorted([sid(1), sid(2)]))


def test_completed_and_passed_counts_within_one_registration() -> None:
    competency = f"{VN}/1.1"
    first, second = str(uuid.UUID(int=101)), str(uuid.UUID(int=102))
    split = run(
        event(1, f"{COURSE}/modules/searching", 10, VERB_PASSED, {"success": True, "score": {"scaled": 0.8}}, first),
        event(2, f"{COURSE}/modules/searching", 25, VERB_COMPLETED, {"completion": True}, second),
    )
    assert split.competencies[competency].status == "in_progress"


def test_completed_move_on_is_met_by_completion_alone() -> None:
    state = run(event(1, f"{COURSE}/modules/online-communication", 5, VERB_COMPLETED, {"completion": True}))
    assert state.competencies[f"{VN}/2.1"].level == "CB2"


def test_a_pass_below_the_mastery_score_does_not_master() -> None:
    state = run(event(1, f"{COURSE}/modules/personal-data", 5, VERB_PASSED, {"success": True, "score": {"scaled": 0.7}}))
    assert state.competencies[f"{VN}/4.2"].status == "in_progress"


def test_evidence_for_an_equivalent_competence_reaches_the_mapped_level() -> None:
    state = run(event(1, f"{DC}/5.1/levels/3", 5))
    assert state.competencies[f"{DC}/5.1"].level == "3"
    assert state.competencies[f"{VN}/5.1"].level == "TC1"


# -- idempotence, late evidence, voiding ------------------------------------------------


def test_same_statement_twice_changes_nothing() -> None:
    once = run(event(1, f"{VN}/6.2/levels/CB1", 5, VERB_PASSED, {"success": True, "score": {"scaled": 0.9}}))
    again = evolve(once, event(1, f"{VN}/6.2/levels/CB1", 5, VERB_PASSED, {"success": True, "score": {"scaled": 0.9}}), CATALOG)
    assert again is once
    assert once.competencies[f"{VN}/6.2"].evidence_count == 1


def test_late_earlier_evidence_refolds_first_mastered_and_latest_score() -> None:
    competency = f"{VN}/6.2"
    state = run(event(2, f"{competency}/levels/CB1", 40, result={"success": True, "score": {"scaled": 0.8}}))
    state = evolve(state, event(1, f"{competency}/levels/CB1", 10, result={"success": True, "score": {"scaled": 0.95}}), CATALOG)
    competency_state = state.competencies[competency]
    assert competency_state.first_mastered_at == "2025-03-01T08:10:00.000000Z"
    assert competency_state.latest_score == 0.8  # the later statement, whatever the arrival order
    assert competency_state.attainments[0].statement_ids == (sid(1),)


def test_voiding_removes_the_evidence_and_refolds() -> None:
    competency = f"{VN}/6.2"
    state = run(
        event(1, f"{competency}/levels/CB1", 10, VERB_FAILED, {"success": False, "score": {"scaled": 0.3}}),
        event(2, f"{competency}/levels/CB2", 20, VERB_PASSED, {"success": True, "score": {"scaled": 0.9}}),
    )
    assert state.competencies[competency].level == "CB2"
    state = evolve(state, void(90, 2), CATALOG)
    refolded = state.competencies[competency]
    assert (refolded.status, refolded.level, refolded.best_score, refolded.evidence_count) == ("in_progress", None, 0.3, 1)
    assert state.voided == (sid(2),)
    state = evolve(state, void(91, 1), CATALOG)
    assert state.competencies == {} and state.evidence == ()


def test_voided_statement_arriving_after_its_void_stays_out() -> None:
    state = run(void(90, 1), event(1, f"{VN}/6.2/levels/CB1", 10))
    assert state.competencies == {}
    assert state.voided == (sid(1),)


# -- certification --------------------------------------------------------------------

REQUIRED = [
    ("searching", VERB_PASSED, {"success": True, "score": {"scaled": 0.9}}),
    ("searching", VERB_COMPLETED, {"completion": True}),
    ("evaluating-sources", VERB_PASSED, {"success": True, "score": {"scaled": 0.9}}),
    ("online-communication", VERB_COMPLETED, {"completion": True}),
    ("e-government-services", VERB_PASSED, {"success": True, "score": {"scaled": 0.9}}),
    ("office-documents", VERB_COMPLETED, {"completion": True}),
    ("device-security", VERB_PASSED, {"success": True, "score": {"scaled": 0.9}}),
    ("personal-data", VERB_PASSED, {"success": True, "score": {"scaled": 0.9}}),
    ("troubleshooting", VERB_PASSED, {"success": True, "score": {"scaled": 0.9}}),
    ("using-ai-assistants", VERB_PASSED, {"success": True, "score": {"scaled": 0.9}}),
]


def course_events() -> list[LearnerEvent]:
    return [event(i + 1, f"{COURSE}/modules/{m}", 10 * (i + 1), verb, result) for i, (m, verb, result) in enumerate(REQUIRED)]


def test_certification_is_earned_when_the_last_requirement_is_met_with_its_exact_statements() -> None:
    events = course_events()
    partial = run(*events[:-1]).certifications[PROGRAM_KEY]
    assert (partial.earned, partial.earned_at, partial.statement_ids) == (False, None, ())
    assert partial.missing == (f"{VN}/6.2",)
    certification = run(*events).certifications[PROGRAM_KEY]
    assert certification.earned is True
    assert certification.earned_at == "2025-03-01T09:40:00.000000Z"
    assert certification.statement_ids == tuple(sorted(sid(i) for i in range(1, 11)))
    assert certification.missing == () and len(certification.met) == 9


def test_extra_later_evidence_does_not_change_the_earning_statements() -> None:
    events = course_events() + [event(50, f"{COURSE}/modules/troubleshooting", 200, VERB_PASSED, {"success": True, "score": {"scaled": 1.0}})]
    certification = run(*events).certifications[PROGRAM_KEY]
    assert sid(50) not in certification.statement_ids
    assert certification.earned_at == "2025-03-01T09:40:00.000000Z"


def test_a_higher_level_meets_a_lower_requirement() -> None:
    events = course_events()
    # replace the 6.2 module (CB1 required) with an objective pass at NC2
    events[-1] = event(10, f"{VN}/6.2/levels/NC2", 100)
    certification = run(*events).certifications[PROGRAM_KEY]
    assert certification.earned and sid(10) in certification.statement_ids


def test_voiding_an_earning_statement_revokes_the_certification() -> None:
    state = run(*course_events())
    state = evolve(state, void(99, 5), CATALOG)
    certification = state.certifications[PROGRAM_KEY]
    assert not certification.earned
    assert certification.missing == (f"{VN}/2.3",)


# -- order independence ----------------------------------------------------------------

POOL: list[LearnerEvent] = [
    *course_events(),
    event(21, f"{VN}/6.2/levels/CB1", 15, VERB_FAILED, {"success": False, "score": {"scaled": 0.2}}),
    event(22, f"{VN}/6.2/levels/TC1", 100, VERB_PASSED, {"success": True, "score": {"scaled": 0.85}}),
    event(23, f"{DC}/1.1/levels/4", 100),  # same timestamp as 22: ties break on statement id
    event(24, f"{COURSE}/modules/searching", 5, VERB_FAILED, {"success": False, "score": {"scaled": 0.5}}),
    event(25, f"{COURSE}/modules/personal-data", 300, VERB_PASSED, {"success": True, "score": {"scaled": 0.7}}),
    event(26, f"{VN}/3.4", 60, VERB_COMPLETED, {"completion": True}),
    event(27, f"{COURSE}/modules/searching", 310, VERB_PASSED, {"success": True, "score": {"scaled": 0.65}},
          context={"platform": "MobiEdu", "extensions": {"https://w3id.org/xapi/cmi5/context/extensions/masteryscore": 0.6}}),
    void(80, 3),
    void(81, 22),
    void(82, 77),  # voids a statement never seen
]


@settings(max_examples=200, deadline=None)
@given(
    chosen=st.sets(st.integers(min_value=0, max_value=len(POOL) - 1)),
    data=st.data(),
)
def test_any_permutation_or_duplication_of_the_same_events_gives_the_same_state(chosen: set[int], data: st.DataObject) -> None:
    events = [POOL[i] for i in sorted(chosen)]
    reference = encoded(run(*events))
    duplicates = data.draw(st.lists(st.sampled_from(events), max_size=8)) if events else []
    shuffled = data.draw(st.permutations(events + duplicates))
    assert encoded(run(*shuffled)) == reference


@settings(max_examples=100, deadline=None)
@given(order=st.permutations(range(len(POOL))))
def test_every_arrival_order_of_the_whole_pool_agrees(order: list[int]) -> None:
    assert encoded(run(*(POOL[i] for i in order))) == encoded(run(*POOL))


def test_the_pool_exercises_mastery_voiding_and_certification() -> None:
    # Guard for the property tests: the reference state is not trivial.
    state = run(*POOL)
    assert state.voided == tuple(sorted([sid(3), sid(22), sid(77)]))
    assert state.competencies[f"{VN}/6.2"].level == "CB1"  # the TC1 pass was voided
    assert state.competencies[f"{VN}/1.1"].level == "TC2"  # via DigComp 1.1 level 4
    assert state.competencies[f"{VN}/3.4"].status == "in_progress"  # objectives move on by Passed
    assert not state.certifications[PROGRAM_KEY].earned  # statement 3 (evaluating-sources) is voided
    with_all = run(*[e for e in POOL if not (isinstance(e, StatementVoided) and e.target_id == sid(3))])
    assert with_all.certifications[PROGRAM_KEY].earned


def test_evidence_event_encodes_and_decodes_for_storage() -> None:
    original = event(1, f"{COURSE}/modules/searching", 10, VERB_PASSED, {"success": True, "score": {"scaled": 0.8}})
    decoded = msgspec.json.decode(msgspec.json.encode(original), type=StatementEvidence | StatementVoided)
    assert decoded == original
    state = run(original)
    assert msgspec.json.decode(msgspec.json.encode(state), type=LearnerState) == state


@settings(max_examples=200, deadline=None)
@given(
    before=st.lists(st.sampled_from(POOL), max_size=10),
    batch=st.lists(st.sampled_from(POOL), max_size=20),
)
def test_evolve_many_equals_evolving_one_event_at_a_time(before: list[LearnerEvent], batch: list[LearnerEvent]) -> None:
    from projections.competency.policy import evolve, evolve_many

    start = run(*before)
    one_by_one = start
    for item in batch:
        one_by_one = evolve(one_by_one, item, CATALOG)
    at_once = evolve_many(start, batch, CATALOG)
    assert encoded(at_once) == encoded(one_by_one)
    assert (at_once is start) == (encoded(one_by_one) == encoded(start))


@settings(max_examples=200, deadline=None)
@given(
    before=st.lists(st.sampled_from(POOL), max_size=10),
    batch=st.lists(st.sampled_from(POOL), max_size=20),
)
def test_kept_certifications_and_competency_order_are_those_a_whole_refold_gives(before: list[LearnerEvent], batch: list[LearnerEvent]) -> None:
    # A refold keeps the state's certifications when no required competency
    # gained, lost or changed its attainments: they must then be exactly what
    # the certifications of the new competencies would be.
    from projections.competency.policy import certifications, evolve_many

    state = evolve_many(run(*before), batch, CATALOG)
    assert state.certifications == certifications(state.competencies, CATALOG)
    assert list(state.competencies) == sorted(state.competencies)  # a refold re-sorts only when one is added


def test_evidence_that_changes_no_attainment_keeps_the_certifications_object() -> None:
    state = run(*course_events())
    more = event(60, f"{COURSE}/modules/searching", 500, VERB_FAILED, {"success": False, "score": {"scaled": 0.1}})
    after = evolve(state, more, CATALOG)
    assert after.competencies != state.competencies  # the count and latest score changed
    assert after.certifications is state.certifications
    # and one that does change an attainment (a late, earlier pass) refolds them
    earlier = event(61, f"{COURSE}/modules/searching", 1, VERB_PASSED, {"success": True, "score": {"scaled": 0.9}})
    refolded = evolve(state, earlier, CATALOG)
    assert refolded.certifications is not state.certifications
    assert refolded.certifications[PROGRAM_KEY].statement_ids != state.certifications[PROGRAM_KEY].statement_ids


def test_merging_an_identifiers_state_and_splitting_it_off_again_give_the_folds_of_each_part() -> None:
    from projections.competency.policy import evolve_many, split, state_events

    mine = [e for i, e in enumerate(POOL) if i % 2 == 0]
    theirs = [e for i, e in enumerate(POOL) if i % 2 == 1]
    person, identifier = run(*mine), run(*theirs)
    merged = evolve_many(person, state_events(identifier, LEARNER), CATALOG)
    assert encoded(merged) == encoded(run(*POOL))
    ids = {e.statement_id for e in theirs if isinstance(e, StatementEvidence)} | {
        e.target_id for e in theirs if isinstance(e, StatementVoided)}
    rest, part = split(merged, ids, CATALOG)
    assert encoded(rest) == encoded(run(*(e for e in POOL if _id(e) not in ids)))
    assert encoded(part) == encoded(run(*(e for e in POOL if _id(e) in ids)))


def _id(event: LearnerEvent) -> str:
    return event.statement_id if isinstance(event, StatementEvidence) else event.target_id
