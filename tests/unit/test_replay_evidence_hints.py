"""A replay read in shares builds the evidence of another share's learner's
statement from what the judging process sent of it (share_judging.EvidenceHint,
through msgpack as the pipes carry it), without the statement: that evidence,
or the failure it is parked with, must be what evidence_of builds from the
statement itself, over statements that use every field evidence_of reads."""

from __future__ import annotations

import dataclasses
import random
import uuid
from typing import Any

import msgspec
import pytest

from projections.competency.catalog import AlignmentTarget
from projections.competency.judgement import MASTERY_SCORE_EXTENSION, OBJECTIVE_TYPE, evidence_of, judge
from projections.competency.rebuild import LogRebuild
from projections.competency.share_judging import EvidenceHint, Hinted, _evidence_hint, take_hinted
from projections.competency.statement_view import decode_view
from tests.unit.test_competency_rebuild import CATALOG, VERBS

OBJECTIVES = sorted(CATALOG.objectives)[:40]
ALIGNED = sorted(CATALOG.alignments)
TIMES = ["2025-03-04T05:06:07Z", "2025-03-04T05:06:07.123456Z", "2025-03-04T12:06:07+07:00", "2025-03-04T05:06:07.5z",
         "not a time"]
AUTHORITIES = [{"mbox": "mailto:platform@example.gov.vn"}, {"account": {"homePage": "https://p.example", "name": "x"}},
               {"objectType": "Group", "member": [{"mbox": "mailto:a@example.gov.vn"}]}]


def _statement(rng: random.Random) -> dict[str, Any]:
    activity: dict[str, Any] = {"id": rng.choice(OBJECTIVES + ALIGNED)}
    if rng.random() < 0.4:
        activity["definition"] = {"type": rng.choice([OBJECTIVE_TYPE, "http://adlnet.gov/expapi/activities/course"])}
    body: dict[str, Any] = {
        "id": str(uuid.UUID(int=rng.getrandbits(128))).upper(),
        "actor": {"mbox": f"mailto:l{rng.randrange(9)}@example.gov.vn"},
        "verb": {"id": rng.choice(VERBS)}, "object": activity,
        "stored": rng.choice(TIMES[:2]),
    }
    if rng.random() < 0.8:
        body["timestamp"] = rng.choice(TIMES)
    result: dict[str, Any] = {}
    if rng.random() < 0.6:
        result["score"] = {"scaled": rng.choice([0.2, 0.75, 0.9])}
    if rng.random() < 0.3:
        result["success"] = rng.random() < 0.5
    if rng.random() < 0.3:
        result["completion"] = rng.random() < 0.5
    if result:
        body["result"] = result
    if rng.random() < 0.7:
        context: dict[str, Any] = {}
        if rng.random() < 0.5:
            context["platform"] = rng.choice(["cmi5 player", "LMS"])
        if rng.random() < 0.5:
            context["registration"] = str(uuid.UUID(int=rng.getrandbits(128))).upper()
        if rng.random() < 0.5:
            context["extensions"] = {MASTERY_SCORE_EXTENSION: rng.choice([0.8, 0.5, 2, "x"]), "https://e.example/x": [1]}
        body["context"] = context
    if rng.random() < 0.8:
        body["authority"] = rng.choice(AUTHORITIES)
    return body


@pytest.mark.parametrize("seed", range(4))
def test_evidence_built_from_a_hint_is_what_evidence_of_builds_from_the_statement(seed: int) -> None:
    rng = random.Random(seed)
    decoder = msgspec.msgpack.Decoder(list[Hinted])
    built = failed = 0
    for position in range(1, 1500):
        view = decode_view(msgspec.json.encode(_statement(rng)))
        judged = judge(view, CATALOG)
        if not isinstance(judged, tuple):
            continue
        try:
            expected: Any = evidence_of(view, judged, CATALOG)
        except Exception as exc:
            expected = repr(exc)
        hint = decoder.decode(msgspec.msgpack.encode([_evidence_hint(position, "t", view, judged, CATALOG)]))
        assert type(hint[0]) is EvidenceHint
        work = LogRebuild(CATALOG)
        kept: list[tuple[int, str, Any]] = []
        take_hinted(work, hint, lambda at, tenant, meaning: kept.append((at, tenant, meaning)))
        if isinstance(expected, str):
            assert work.failed == [(position, "t", expected)] and kept == []
            failed += 1
        else:
            assert work.failed == [] and kept == ([] if expected is None else [(position, "t", expected)])
            built += expected is not None
    assert built > 100 and failed > 10  # evidence of both kinds of activity, and timestamps the rules refuse


def test_evidence_built_from_a_hint_about_an_objective_that_is_also_aligned_is_what_evidence_of_builds() -> None:
    """An activity both an objective and in an alignment table: the hint
    says whether its objective counts (by its definition type) and the
    share that builds the evidence finds the targets from the catalog."""
    objective, other = OBJECTIVES[0], OBJECTIVES[-1]
    extra = CATALOG.objectives[other]
    aligned = dataclasses.replace(CATALOG, alignments={
        **CATALOG.alignments, objective: (AlignmentTarget(extra.competency, extra.level, mastery_score=0.8,
                                                          source="alignment"),)})
    decoder = msgspec.msgpack.Decoder(list[Hinted])
    told: set[tuple[Any, int]] = set()
    for declared in (None, OBJECTIVE_TYPE, "http://adlnet.gov/expapi/activities/course"):
        for score in (0.5, 0.9):
            body: dict[str, Any] = {
                "id": str(uuid.uuid4()), "actor": {"mbox": "mailto:l1@example.gov.vn"},
                "verb": {"id": VERBS[0]}, "object": {"id": objective}, "result": {"score": {"scaled": score}},
                "timestamp": TIMES[0], "stored": TIMES[1],
            }
            if declared is not None:
                body["object"]["definition"] = {"type": declared}
            view = decode_view(msgspec.json.encode(body))
            judged = judge(view, aligned)
            assert isinstance(judged, tuple)
            expected = evidence_of(view, judged, aligned)
            [hint] = decoder.decode(msgspec.msgpack.encode([_evidence_hint(1, "t", view, judged, aligned)]))
            kept: list[tuple[int, str, Any]] = []
            take_hinted(LogRebuild(aligned), [hint], lambda at, tenant, meaning: kept.append((at, tenant, meaning)))
            assert kept == [(1, "t", expected)]
            told.add((declared, len(expected.evidence)))  # type: ignore[union-attr]
    assert len({count for _, count in told}) == 2  # the objective counted or not, by its definition type
