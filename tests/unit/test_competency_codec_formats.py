"""Format 3 stores no competency: decoding folds each one again from its
evidence (projections/competency/codec.py).  Over the states the real fold
makes of generated logs (statements of every kind the digest's generator
writes, voidings before and after their targets, two tenants; replayed,
applied live a few events at a time, merged into a person and split off
again), a state stored in format 2 (each competency's fields stored) and the
same state stored in format 3 decode to the state itself, and digest alike."""

from __future__ import annotations

import random

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from projections.competency.codec import decode_state, digest_bytes, encode_state, open_state
from projections.competency.model import LearnerState
from projections.competency.policy import evolve, evolve_many, split, state_events
from projections.competency.rebuild import LogRebuild
from tests.unit.test_competency_codec import format_2
from tests.unit.test_competency_digest_pinned import CATALOG, _log


OBJECTIVE = "http://adlnet.gov/expapi/activities/objective"
COMPETENCES = sorted(CATALOG.competencies.values(), key=lambda c: c.iri)


def _leveled_log(seed: int, size: int) -> list[tuple[int, str, str, bytes]]:
    """The digest's generated log, with a third of its statements about a
    competence itself (an objective), at one of its levels or at none, so
    that a competency reaches more than one level (the course's modules are
    each aligned at one)."""
    rng = random.Random(seed)
    log = []
    for position, tenant, kind, payload in _log(seed, size):
        body = msgspec.json.decode(payload)
        if body["verb"]["id"] != "http://adlnet.gov/expapi/verbs/voided" and rng.random() < 0.35:
            competence = rng.choice(COMPETENCES[:6])  # a few, so that levels pile up on each
            level = rng.choice([None, *competence.levels[:4]])
            iri = competence.iri if level is None else f"{competence.iri}/levels/{level}"
            body["object"] = {"objectType": "Activity", "id": iri, "definition": {"type": OBJECTIVE}}
        log.append((position, tenant, kind, msgspec.json.encode(body)))
    return log


def _states(seed: int, size: int, chunk: int) -> list[LearnerState]:
    """Every state the fold makes of a generated log, by each of its paths."""
    rebuild = LogRebuild(CATALOG)
    for event in _leveled_log(seed, size):
        rebuild.add(*event)
    states: list[LearnerState] = []
    by_key: dict[tuple[str, str], LearnerState] = {}
    for key in rebuild.prepare():
        replayed = rebuild.fold(key).state
        items = rebuild.events[key]
        live = one_by_one = LearnerState(learner=key[1])
        for start in range(0, len(items), chunk):
            live = evolve_many(live, items[start:start + chunk], CATALOG)
            states.append(live)  # and each state on the way
        for item in items:
            one_by_one = evolve(one_by_one, item, CATALOG)
        assert live == replayed == one_by_one
        states.append(replayed)
        by_key[key] = replayed
    # linked identifiers: a person takes the next two learners' states, then gives one back
    keys = sorted(by_key)
    for n in range(0, len(keys) - 2, 3):
        person, first, second = keys[n], keys[n + 1], keys[n + 2]
        events = [*state_events(by_key[first], person[1]), *state_events(by_key[second], person[1])]
        merged = evolve_many(by_key[person], events, CATALOG)
        moved = {e.statement_id for e in by_key[first].evidence} | set(by_key[first].voided)
        states.extend([merged, *split(merged, moved, CATALOG)])
    return states


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), size=st.integers(1, 150), chunk=st.integers(1, 6))
def test_every_state_of_a_generated_log_decodes_alike_from_format_2_and_format_3(seed: int, size: int, chunk: int) -> None:
    for state in _states(seed, size, chunk):
        old, new = format_2(state), encode_state(state)
        assert decode_state(old) == decode_state(new) == state
        assert digest_bytes(old) == digest_bytes(new) == open_state(new)


def test_the_generated_states_have_what_the_comparison_is_meant_to_cover() -> None:
    states = _states(19, 400, 3)
    competencies = [c for s in states for c in s.competencies.values()]
    assert any(s.voided for s in states) and any(c.earned for s in states for c in s.certifications.values())
    assert {c.status for c in competencies} == {"in_progress", "mastered"}
    assert any(len(c.attainments) > 1 for c in competencies)  # more than one level reached
    assert any(c.best_score != c.latest_score for c in competencies)
    assert any(len({e.registration for e in s.evidence}) > 1 for s in states)
    frameworks = {c.competency.split("/competences/")[0] for c in competencies}
    assert len(frameworks) > 1  # one statement is evidence in more than one framework
