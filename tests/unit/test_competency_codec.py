"""The stored form of a learner's state (projections/competency/codec.py)."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from projections.competency.codec import FORMAT, StateFormatError, decode_state, encode_state
from projections.competency.model import LearnerState
from tests.unit.test_competency_fold import POOL, run


@settings(max_examples=200, deadline=None)
@given(chosen=st.lists(st.sampled_from(POOL), max_size=len(POOL)))
def test_every_state_decodes_to_itself(chosen: list) -> None:
    state = run(*chosen)
    assert decode_state(encode_state(state)) == state


def test_the_whole_pool_round_trips_with_mastery_voiding_and_certification() -> None:
    state = run(*POOL)
    assert state.voided and state.certifications and any(c.attainments for c in state.competencies.values())
    back = decode_state(encode_state(state))
    assert back == state
    assert list(back.competencies) == sorted(state.competencies)


def test_equal_states_have_equal_bytes_whatever_their_dict_order() -> None:
    state = run(*POOL)
    shuffled = msgspec.structs.replace(
        state,
        competencies=dict(reversed(list(state.competencies.items()))),
        certifications=dict(reversed(list(state.certifications.items()))),
    )
    assert shuffled == state
    assert encode_state(shuffled) == encode_state(state)


def test_each_string_is_stored_once_so_the_state_is_far_smaller_than_json() -> None:
    state = run(*POOL)
    raw = encode_state(state)
    table = msgspec.msgpack.decode(raw)[3]
    assert len(table) == len(set(table))
    assert len(raw) * 3 < len(msgspec.json.encode(state))


def test_an_empty_state_round_trips() -> None:
    state = LearnerState(learner="mbox:mailto:a@example.org")
    assert decode_state(encode_state(state)) == state


@pytest.mark.parametrize(
    "raw",
    [
        b"tampered",
        b'{"learner": "mbox:mailto:a@example.org"}',
        msgspec.msgpack.encode([FORMAT + 1, "x", 2, [], [], [], [], []]),
        msgspec.msgpack.encode([FORMAT, "x", 2, [], [7], [], [], []]),  # an index past the string table
        msgspec.msgpack.encode([FORMAT, "x", 2, ["a", "b"], [-1], [], [], []]),  # a negative index
        msgspec.msgpack.encode([FORMAT, "x", 2, "ab", [0], [], [], []]),  # the table is not a list
        msgspec.msgpack.encode([FORMAT, 5, 2, [], [], [], [], []]),  # the learner is not a string
        msgspec.msgpack.encode([FORMAT, "x", "v", [], [], [], [], []]),
        msgspec.msgpack.encode([True, "x", 2, [], [], [], [], []]),
        msgspec.msgpack.encode([float(FORMAT), "x", 2, [], [], [], [], []]),
        msgspec.msgpack.encode([FORMAT, "x"]),
        b"\x91" * 100_000 + b"\xc0",  # nested far deeper than any state
    ],
)
def test_bytes_that_are_not_a_stored_state_are_refused_with_a_clear_error(raw: bytes) -> None:
    with pytest.raises(StateFormatError):
        decode_state(raw)
