"""policy.certifications reads whether a requirement is met from the
competency's highest attainment (branch proj-codec); it must give what the
function before that change gave (kept here as it was, from 8011899^1) for
any learner: programmes needing several competencies at several levels,
competencies reached below, at or above the need, at several levels, not
reached, or left without attainments by a voiding."""

from __future__ import annotations

from operator import attrgetter
from types import SimpleNamespace
from typing import Any

from hypothesis import given, settings, strategies as st

from projections.competency.model import CompetencyState, LevelAttainment, ProgramCertification
from projections.competency.policy import certifications

_EARLIEST_ATTAINMENT = attrgetter("achieved_at", "level_rank", "statement_ids")
COMPETENCIES = [f"https://lrs.example.org/competences/{n}" for n in range(5)]
TIMES = [f"2025-0{month}-01T00:00:00Z" for month in range(1, 8)]


def certifications_before(competencies: dict[str, CompetencyState], catalog: Any) -> dict[str, ProgramCertification]:
    """policy.certifications as it was before branch proj-codec."""
    result: dict[str, ProgramCertification] = {}
    for (program, needs), required in zip(catalog.program_needs, catalog.program_required):
        if required.isdisjoint(competencies):
            continue
        met: list[str] = []
        missing: list[str] = []
        times: list[str] = []
        known: list[str] = []
        ids: set[str] = set()
        for competency, needed in needs:
            state = competencies.get(competency)
            candidates = [a for a in state.attainments if a.level_rank >= needed] if state else None
            if not candidates:
                missing.append(competency)
                continue
            met.append(competency)
            if len(candidates) == 1:
                first = candidates[0]
                known.append(first.known_at)
            else:
                first = min(candidates, key=_EARLIEST_ATTAINMENT)
                known.append(min([a.known_at for a in candidates]))
            times.append(first.achieved_at)
            ids.update(first.statement_ids)
        earned = not missing
        result[f"{program.iri}|{program.version}"] = ProgramCertification(
            program=program.iri, program_version=program.version, earned=earned,
            earned_at=max(times) if earned else None, known_at=max(known) if earned else None,
            statement_ids=tuple(sorted(ids)) if earned else (), met=tuple(sorted(met)), missing=tuple(sorted(missing)),
        )
    return result


@st.composite
def attainments(draw: st.DrawFn) -> tuple[LevelAttainment, ...]:
    """Attainments as a fold keeps them: one per level, lowest level first
    (rank 0: the competence alone, without a level); none after a voiding."""
    ranks = sorted(draw(st.sets(st.integers(0, 4), max_size=4)))
    return tuple(
        LevelAttainment(
            level=f"L{rank}" if rank else None, level_rank=rank, achieved_at=draw(st.sampled_from(TIMES)),
            statement_ids=tuple(sorted(draw(st.sets(st.sampled_from("abcdef"), min_size=1, max_size=3)))),
            known_at=draw(st.sampled_from(TIMES + [""])),
        )
        for rank in ranks
    )


def _state(competency: str, reached: tuple[LevelAttainment, ...]) -> CompetencyState:
    return CompetencyState(
        competency=competency, status="mastered" if reached else "in_progress",
        level=reached[-1].level if reached else None, best_score=None, latest_score=None, evidence_count=1,
        first_evidence_at=None, last_evidence_at=None,
        first_mastered_at=min(a.achieved_at for a in reached) if reached else None, attainments=reached,
    )


learners = st.dictionaries(st.sampled_from(COMPETENCIES), attainments(), max_size=len(COMPETENCIES)).map(
    lambda reached: {competency: _state(competency, a) for competency, a in reached.items()}
)


@st.composite
def catalogs(draw: st.DrawFn) -> Any:
    """The part of a Catalog certifications reads: programmes, each needing
    one or more competencies at a level rank (0: any attainment)."""
    needs = draw(st.lists(
        st.dictionaries(st.sampled_from(COMPETENCIES), st.integers(0, 4), min_size=1, max_size=4),
        min_size=1, max_size=4,
    ))
    program_needs = tuple(
        (SimpleNamespace(iri=f"https://lrs.example.org/programs/{n}", version="1"), tuple(need.items()))
        for n, need in enumerate(needs)
    )
    return SimpleNamespace(
        program_needs=program_needs,
        program_required=tuple(frozenset(c for c, _ in need) for _, need in program_needs),
    )


@settings(max_examples=600, deadline=None)
@given(learners, catalogs())
def test_certifications_are_what_they_were_before_for_any_learner(competencies: Any, catalog: Any) -> None:
    assert certifications(competencies, catalog) == certifications_before(competencies, catalog)


def test_the_generated_cases_cover_earned_missing_and_reached_below_the_need() -> None:
    """Guard for the property test: its strategies reach the cases it is about."""
    seen: set[str] = set()

    @settings(max_examples=300, deadline=None)
    @given(learners, catalogs())
    def look(competencies: Any, catalog: Any) -> None:
        for (_, needs) in catalog.program_needs:
            for competency, needed in needs:
                reached = competencies[competency].attainments if competency in competencies else None
                if reached == ():
                    seen.add("voided")
                elif reached and reached[-1].level_rank < needed:
                    seen.add("below")
                elif reached and len([a for a in reached if a.level_rank >= needed]) > 1:
                    seen.add("several at or above")
        for certification in certifications_before(competencies, catalog).values():
            seen.add("earned" if certification.earned else "missing")

    look()
    assert seen == {"voided", "below", "several at or above", "earned", "missing"}
