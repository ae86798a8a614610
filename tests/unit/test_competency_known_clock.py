"""The rule behind ``as_of`` on the known clock (projections/competency/known_clock.py):
folding the statements stored by T earns a certification exactly when the
present state has it earned with ``known_at <= T``, for every learner whom no
voiding stored after T took evidence from.  Checked against the fold itself
on generated evidence, stored times and voidings."""

from __future__ import annotations

import uuid
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from projections.competency.catalog import load_catalog
from projections.competency.model import LearnerEvent, StatementVoided
from projections.competency.policy import VERB_COMPLETED, VERB_FAILED, VERB_PASSED, VERB_VOIDED, fold, interpret

CATALOG = load_catalog()
VN = "https://lrs.example.org/competency/vn-tt02-2025/1.0/competences"
COURSE = "https://lrs.example.org/courses/civil-servant-basic-digital-skills"
PROGRAM_KEY = "https://lrs.example.org/competency/programs/civil-servant-basic-digital-skills|2025.1"
OBJECTIVE = "http://adlnet.gov/expapi/activities/objective"
PASS = {"success": True, "score": {"scaled": 0.9}}
DONE = {"completion": True}

# (activity, verb, result): everything the programme asks for, and other ways to some of it
REQUIRED = [
    (f"{COURSE}/modules/searching", VERB_PASSED, PASS), (f"{COURSE}/modules/searching", VERB_COMPLETED, DONE),
    (f"{COURSE}/modules/evaluating-sources", VERB_PASSED, PASS),
    (f"{COURSE}/modules/online-communication", VERB_COMPLETED, DONE),
    (f"{COURSE}/modules/e-government-services", VERB_PASSED, PASS),
    (f"{COURSE}/modules/office-documents", VERB_COMPLETED, DONE),
    (f"{COURSE}/modules/device-security", VERB_PASSED, PASS), (f"{COURSE}/modules/personal-data", VERB_PASSED, PASS),
    (f"{COURSE}/modules/troubleshooting", VERB_PASSED, PASS),
    (f"{COURSE}/modules/using-ai-assistants", VERB_PASSED, PASS),
]
OTHERS = [
    (f"{COURSE}/modules/evaluating-sources", VERB_PASSED, {"success": True, "score": {"scaled": 0.75}}),
    (f"{COURSE}/modules/evaluating-sources", VERB_FAILED, {"success": False, "score": {"scaled": 0.3}}),
    (f"{COURSE}/modules/searching", VERB_PASSED, PASS), (f"{COURSE}/modules/office-documents", VERB_COMPLETED, DONE),
    (f"{COURSE}/modules/using-ai-assistants", VERB_PASSED, PASS),
    (f"{VN}/6.2/levels/NC2", VERB_PASSED, PASS), (f"{VN}/6.2/levels/CB1", VERB_FAILED, {"success": False}),
]
POOL = REQUIRED + OTHERS


def sid(n: int) -> str:
    return str(uuid.UUID(int=n + 1))


def stored_at(minute: int) -> str:
    return f"2025-04-01T{8 + minute // 60:02d}:{minute % 60:02d}:00.000000Z"


def evidence(n: int, minute: int) -> LearnerEvent:
    activity, verb, result = POOL[n]
    body: dict[str, Any] = {
        "id": sid(n), "actor": {"mbox": "mailto:learner@example.gov.vn"}, "verb": {"id": verb},
        "object": {"id": activity, **({"definition": {"type": OBJECTIVE}} if activity.startswith(VN) else {})},
        "timestamp": f"2025-03-01T08:{n:02d}:00Z", "stored": stored_at(minute), "result": result,
    }
    meaning = interpret(body, CATALOG)
    assert meaning is not None
    return meaning


def voiding(target: int) -> StatementVoided:
    return StatementVoided(statement_id=sid(100 + target), target_id=sid(target))


def earned(events: list[LearnerEvent]) -> tuple[bool, str | None]:
    held = fold("mbox:mailto:learner@example.gov.vn", events, CATALOG).certifications.get(PROGRAM_KEY)
    return (held is not None and held.earned, held.known_at if held is not None else None)


minutes = st.integers(min_value=0, max_value=30)


@settings(max_examples=300, deadline=None)
@given(
    required=st.lists(minutes, min_size=len(REQUIRED), max_size=len(REQUIRED)),
    missing=st.sets(st.integers(min_value=0, max_value=len(REQUIRED) - 1), max_size=1),
    others=st.dictionaries(st.integers(min_value=len(REQUIRED), max_value=len(POOL) - 1), minutes),
    voided=st.dictionaries(st.integers(min_value=0, max_value=len(POOL) - 1), minutes, max_size=3),
)
def test_folding_what_was_stored_by_then_agrees_with_known_at_unless_a_later_voiding(
    required: list[int], missing: set[int], others: dict[int, int], voided: dict[int, int]
) -> None:
    stored = {**{n: m for n, m in enumerate(required) if n not in missing}, **others}
    log = sorted([(m, evidence(n, m)) for n, m in stored.items()] + [(m, voiding(n)) for n, m in voided.items()],
                 key=lambda item: item[0])
    present, known_at = earned([e for _, e in log])
    for moment in range(-1, 32):
        by_then, _ = earned([e for m, e in log if m <= moment])
        if any(m > moment for m in voided.values()):
            continue  # known_clock folds these learners again
        assert by_then == (present and known_at is not None and known_at <= stored_at(moment)), moment


def test_a_later_voiding_is_why_some_learners_are_folded_again() -> None:
    # Guard for the property: a certification held at 10:00 on the known clock
    # that a voiding stored at 10:20 took away is not in the present state.
    log = [(i, evidence(i, i)) for i in range(len(REQUIRED))] + [(20, voiding(2))]
    assert earned([e for m, e in log if m <= 10]) == (True, stored_at(9))
    assert earned([e for _, e in log])[0] is False
    # with the other pass of evaluating-sources stored at 15, it is held again from then, known from 15
    again = log + [(15, evidence(len(REQUIRED), 15))]
    assert earned([e for _, e in again]) == (True, stored_at(15))
