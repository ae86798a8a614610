"""A state stored under other rules is never folded with these.

Format 3 stores a state's evidence and certifications and folds its
competencies again on decode.  The evidence and the certifications of a
state written under an earlier rule version are that version's answers;
folding its competencies with the current rules would give an answer made
of two rule sets.  A rule-version bump is simulated by storing a state the
real fold built with its ``rule_version`` (that of the state, and of its
certifications) one below the code's, as the rules before the bump wrote it.
"""

from __future__ import annotations

import msgspec
import pytest

from projections.competency.codec import StateFormatError, StateRulesError, decode_state, digest_bytes, encode_state, open_state
from projections.competency.model import RULE_VERSION, LearnerState
from tests.unit.test_competency_codec import format_2
from tests.unit.test_competency_fold import POOL, run


def written_by_the_rules_before(state: LearnerState) -> LearnerState:
    """``state`` as the rules of the version before this one stored it."""
    before = RULE_VERSION - 1
    return msgspec.structs.replace(
        state,
        rule_version=before,
        competencies={k: msgspec.structs.replace(c, rule_version=before) for k, c in state.competencies.items()},
        certifications={k: msgspec.structs.replace(p, rule_version=before) for k, p in state.certifications.items()},
    )


def test_a_state_of_another_rule_version_is_refused_not_folded_with_these_rules() -> None:
    state = run(*POOL)
    assert state.competencies and state.certifications  # what a refold would mix with the old certifications
    old = written_by_the_rules_before(state)
    for stored in (encode_state(old), format_2(old)):  # format 2 kept the old answer, but one behaviour for both
        with pytest.raises(StateRulesError) as refused:
            decode_state(stored)
        assert refused.value.stored == RULE_VERSION - 1
        assert str(refused.value) == (
            f"the learner's state was built under rule version {RULE_VERSION - 1}; these rules are version "
            f"{RULE_VERSION}"  # what to do is the reader's to say: the service may be rebuilding it already
        )
        assert isinstance(refused.value, StateFormatError)  # every reader's 503 covers it


def test_a_state_of_another_rule_version_digests_as_stored_in_both_formats() -> None:
    # the audit digest never folds: it hashes what the old rules stored,
    # alike whichever format holds it
    old = written_by_the_rules_before(run(*POOL))
    layout = open_state(encode_state(old))
    assert msgspec.msgpack.decode(layout)[2] == RULE_VERSION - 1
    assert digest_bytes(encode_state(old)) == digest_bytes(format_2(old)) == layout


def test_a_state_of_these_rules_still_decodes_in_both_formats() -> None:
    state = run(*POOL)
    assert decode_state(encode_state(state)) == state == decode_state(format_2(state))
