"""The stored form of a learner's state (projections/competency/codec.py)."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from projections.competency.codec import (
    FORMAT,
    StateFormatError,
    canonical,
    decode_state,
    encode_state,
    encode_state_after,
)
from projections.competency.model import LearnerState
from projections.competency.policy import evolve_many
from tests.unit.test_competency_fold import CATALOG, LEARNER, POOL, run


@settings(max_examples=200, deadline=None)
@given(chosen=st.lists(st.sampled_from(POOL), max_size=len(POOL)))
def test_every_state_decodes_to_itself(chosen: list) -> None:
    state = run(*chosen)
    assert decode_state(encode_state(state)) == state


@settings(max_examples=300, deadline=None)
@given(batches=st.lists(st.lists(st.sampled_from(POOL), max_size=4), max_size=8))
def test_a_state_written_over_the_previous_one_decodes_to_it_and_has_its_canonical_form(batches: list) -> None:
    """Batch after batch, in and out of time order, with voidings and
    duplicates, as the live projection writes a learner: each write decodes
    to the state and its canonical form is the state's own; the first write
    (nothing before it) is canonical already."""
    state = LearnerState(learner=LEARNER)
    raw, previous = encode_state_after(state, None)
    assert raw == encode_state(state)
    for batch in batches:
        state = evolve_many(state, batch, CATALOG)
        raw, previous = encode_state_after(state, previous)
        assert decode_state(raw) == state
        assert canonical(raw) == encode_state(state)
    assert encode_state_after(state, None)[0] == encode_state(state)


def test_only_the_rows_that_changed_are_encoded_again() -> None:
    """A row keeps its bytes while its values are the very objects written
    before; equal values in other objects (a state decoded again) are
    encoded anew, from the same table."""
    early = run(*POOL[:3])
    raw, previous = encode_state_after(early, None)
    again = decode_state(raw)
    raw_again, after = encode_state_after(again, previous)
    assert raw_again == raw and after.strings == previous.strings
    assert all(after.statements[k].raw is not previous.statements[k].raw for k in previous.statements)
    same, kept = encode_state_after(early, previous)
    assert same == raw and all(kept.statements[k].raw is previous.statements[k].raw for k in previous.statements)
    whole = evolve_many(early, POOL[3:], CATALOG)
    raw_whole, grown = encode_state_after(whole, kept)
    assert decode_state(raw_whole) == whole and canonical(raw_whole) == encode_state(whole)
    assert list(grown.strings)[: len(kept.strings)] == list(kept.strings)


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
