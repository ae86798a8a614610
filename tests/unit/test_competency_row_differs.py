"""Live apply's test of whether a refolded competency's row changed.

``store._row_differs`` reads the two states' fields instead of building the
old ``competency_states`` row to compare with the new one: it must say
"changed" whenever the two rows differ, for a change of any field the row
holds, and "the same" for states whose rows are equal field for field.
"""

from __future__ import annotations

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from projections.competency.model import CompetencyState, LevelAttainment
from projections.competency.rows import STATE_COLUMNS, state_row
from projections.competency.store import _row_differs

TIMES = st.sampled_from([None, "2026-01-02T03:04:05.000000Z", "2026-01-02T03:04:06.000000Z"])
SCORES = st.one_of(st.none(), st.sampled_from([0.0, 0.5, 0.9, 1.0]))
ATTAINMENTS = st.lists(
    st.builds(LevelAttainment, level=st.sampled_from([None, "1", "2"]), level_rank=st.integers(0, 3),
              achieved_at=st.just("2026-01-01T00:00:00.000000Z"), statement_ids=st.just(("s",))),
    max_size=2,
).map(tuple)
FIELDS = {
    "competency": st.just("c"),
    "status": st.sampled_from(["not_started", "in_progress", "mastered"]),
    "level": st.sampled_from([None, "1", "2"]),
    "best_score": SCORES,
    "latest_score": SCORES,
    "evidence_count": st.integers(0, 3),
    "first_evidence_at": TIMES,
    "last_evidence_at": TIMES,
    "first_mastered_at": TIMES,
    "attainments": ATTAINMENTS,
    "rule_version": st.integers(1, 2),
}
STATES = st.builds(CompetencyState, **FIELDS)


def test_every_field_of_a_competency_state_is_varied() -> None:
    """A field added to CompetencyState with a default is one st.builds
    leaves as it is: were state_row to write it and _row_differs not to
    compare it, the property below would still hold.  Each field is varied."""
    assert set(FIELDS) == {f.name for f in msgspec.structs.fields(CompetencyState)}


@settings(max_examples=1000, deadline=None)
@given(STATES, STATES)
def test_row_differs_says_whether_the_rows_differ(was: CompetencyState, now: CompetencyState) -> None:
    assert _row_differs(was, now) == (state_row("t", "l", was) != state_row("t", "l", now))


@given(STATES)
def test_a_state_whose_row_fields_are_the_same_is_not_changed(was: CompetencyState) -> None:
    # fields the row does not hold (first and last evidence, earlier attainments) change nothing
    now = msgspec.structs.replace(was, first_evidence_at="2027-01-01T00:00:00.000000Z", last_evidence_at=None,
                                  attainments=(LevelAttainment(level=None, level_rank=9, achieved_at="x",
                                                               statement_ids=()), *was.attainments[-1:]))
    if not was.attainments:
        now = msgspec.structs.replace(now, attainments=())
    assert _row_differs(was, now) is False
    assert _row_differs(was, msgspec.structs.replace(was, evidence_count=was.evidence_count + 1)) is True


def test_the_row_holds_the_fields_row_differs_reads() -> None:
    """A column added to competency_states' rows needs its field in _row_differs too."""
    assert STATE_COLUMNS == [
        "tenant", "learner", "competency", "status", "level", "level_rank", "best_score",
        "latest_score", "evidence_count", "first_mastered_at", "rule_version",
    ]
