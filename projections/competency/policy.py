"""The competency rules: from statements to evidence, from evidence to state.

Pure: no clock, no randomness, no I/O.  The rules are kept in three modules,
and this one names them all in one place (the projection, the replay and the
benches import them from here):

- judgement.py: statement -> event (alignment, judgement, the evidence a
  statement is, a voiding);
- mastery.py: evidence -> the levels a competency reaches (cmi5 moveOn) and
  the programmes the competencies earn;
- learner_fold.py: a learner's state under events, the same whatever order
  they arrive in (evidence added once, voidings remembered).
"""

from __future__ import annotations

from projections.competency.judgement import (
    CHILD_ACTIVITY_TYPES,
    MASTERY_SCORE_EXTENSION,
    OBJECTIVE_TYPE,
    VERB_ANSWERED,
    VERB_COMPLETED,
    VERB_FAILED,
    VERB_PASSED,
    VERB_SATISFIED,
    VERB_VOIDED,
    VERB_WAIVED,
    Judged,
    evidence_of,
    interpret,
    interpret_stored,
    judge,
    memo_limit,
    normalise_timestamp,
)
from projections.competency.learner_fold import evolve, evolve_many, fold, split, state_events
from projections.competency.mastery import certifications, fold_competency, fold_ordered

__all__ = [
    "VERB_PASSED",
    "VERB_FAILED",
    "VERB_COMPLETED",
    "VERB_WAIVED",
    "VERB_SATISFIED",
    "VERB_VOIDED",
    "VERB_ANSWERED",
    "CHILD_ACTIVITY_TYPES",
    "OBJECTIVE_TYPE",
    "MASTERY_SCORE_EXTENSION",
    "normalise_timestamp",
    "interpret",
    "interpret_stored",
    "memo_limit",
    "judge",
    "evidence_of",
    "Judged",
    "fold_competency",
    "fold_ordered",
    "certifications",
    "evolve",
    "evolve_many",
    "fold",
    "state_events",
    "split",
]
