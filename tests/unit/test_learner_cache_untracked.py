"""The competency projection's learner cache stays out of the cyclic
garbage collector's sight (docs/scaling.md, "branch proj-gc")."""

from __future__ import annotations

import gc

from projections.competency.codec import decode_state, encode_state
from projections.competency.model import CompetencyState, Evidence, LearnerState, LevelAttainment, ProgramCertification


def test_a_cached_learner_state_holds_nothing_the_collector_tracks() -> None:
    """The projection's learner cache costs the collector nothing once its
    states have been through one collection: the state's Structs opt out
    (``gc=False``, so their types are not collectable at all), the dicts of
    them are never tracked, and the tuples are untracked by the first
    collection that meets them.  A Struct type made collectable again would
    put every cached learner's containers back in each full collection."""
    evidence = Evidence(
        timestamp="2025-03-01T08:00:00.000000Z", statement_id="00000000-0000-4000-8000-000000000001",
        competency="https://example.org/c/1", level_rank=1, activity="https://example.org/a/1", level="A1",
        source="alignment", verb="http://adlnet.gov/expapi/verbs/passed", registration=None, passed=True,
        completed=True, score=0.9, move_on="Passed",
    )
    attained = LevelAttainment(level="A1", level_rank=1, achieved_at=evidence.timestamp, statement_ids=(evidence.statement_id,))
    competency = CompetencyState(
        competency=evidence.competency, status="mastered", level="A1", best_score=0.9, latest_score=0.9,
        evidence_count=1, first_evidence_at=evidence.timestamp, last_evidence_at=evidence.timestamp,
        first_mastered_at=evidence.timestamp, attainments=(attained,),
    )
    certification = ProgramCertification(
        program="https://example.org/p", program_version="1", earned=True, earned_at=evidence.timestamp,
        statement_ids=(evidence.statement_id,), met=(evidence.competency,), missing=(),
    )
    state = decode_state(encode_state(LearnerState(
        learner="mbox:mailto:a@example.org", evidence=(evidence,), voided=("00000000-0000-4000-8000-000000000002",),
        competencies={competency.competency: competency}, certifications={"https://example.org/p|1": certification},
    )))
    cache = {("default", state.learner): state}
    gc.collect()

    containers = [state, state.evidence, state.voided, state.competencies, state.certifications]
    for kept in state.competencies.values():
        containers += [kept, kept.attainments, *(a.statement_ids for a in kept.attainments)]
    for kept in state.certifications.values():
        containers += [kept, kept.statement_ids, kept.met, kept.missing]
    assert [c for c in (*cache, *containers) if gc.is_tracked(c)] == []
