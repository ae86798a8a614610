"""A learner state's frame is made with a zstd dictionary trained on states
(schemas/zstd/states/, bench/state_dictionary.py): it names the dictionary in
its header, and a state stored before, without one, reads and digests as the
same state stored now.  A shipped dictionary is never changed."""

from __future__ import annotations

import hashlib

import pytest
import zstandard

from projections.competency import codec
from projections.competency.codec import StateFormatError, decode_state, digest_bytes, encode_state, open_state
from tests.unit.test_competency_fold import POOL, run

# Stored states name these for as long as they exist; a new one gets a new id.
SHIPPED = {1001: "82bcf0005e62bc4aac65a6cb17b11a15c5013ee0ebb1e07cd93882eaaa9d5cb4"}
BEFORE = zstandard.ZstdCompressor(level=1, write_checksum=False, write_content_size=True)  # the frame before lag6


def test_every_shipped_state_dictionary_is_the_one_states_were_written_with() -> None:
    shipped = {int(f.name.removesuffix(".dict")): hashlib.sha256(f.read_bytes()).hexdigest()
               for f in codec.STATE_DICTIONARIES.iterdir() if f.name.endswith(".dict")}
    assert shipped == SHIPPED
    assert codec.STATE_DICTIONARY in shipped


def test_a_state_names_the_dictionary_it_was_compressed_with_and_is_smaller_for_it() -> None:
    state = run(*POOL)
    stored = encode_state(state)
    assert zstandard.get_frame_parameters(stored).dict_id == codec.STATE_DICTIONARY
    assert len(stored) < len(BEFORE.compress(open_state(stored)))
    assert decode_state(stored) == state


def test_a_state_stored_without_a_dictionary_before_reads_and_digests_as_one_stored_now() -> None:
    for chosen in (POOL, POOL[:3], POOL[:1], []):
        state = run(*chosen)
        layout = open_state(encode_state(state))
        before = BEFORE.compress(layout)
        assert zstandard.get_frame_parameters(before).dict_id == 0 and before != encode_state(state)
        assert decode_state(before) == state
        assert digest_bytes(before) == digest_bytes(encode_state(state)) == layout


def test_a_frame_naming_a_dictionary_not_shipped_is_refused_naming_it() -> None:
    layout = open_state(encode_state(run(*POOL)))
    foreign = zstandard.train_dictionary(1024, [layout + bytes([n]) * n for n in range(200)], dict_id=4242)
    frame = zstandard.ZstdCompressor(level=1, dict_data=foreign, write_dict_id=True).compress(layout)
    with pytest.raises(StateFormatError, match="dictionary 4242"):
        decode_state(frame)
    with pytest.raises(StateFormatError):
        decode_state(codec.MAGIC)  # no frame header at all
