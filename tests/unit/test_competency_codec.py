"""The stored form of a learner's state (projections/competency/codec.py)."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import zstandard

from projections.competency.codec import (
    FORMAT,
    MAGIC,
    StateFormatError,
    decode_state,
    digest_bytes,
    encode_state,
    open_state,
)
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
    raw = open_state(encode_state(state))
    table = msgspec.msgpack.decode(raw)[3]
    assert len(table) == len(set(table))
    assert len(raw) * 3 < len(msgspec.json.encode(state))


# A state of one statement as stored before states were compressed
# (the uncompressed layout, written by main at ece2845).
OLD_FORM = bytes.fromhex(
    "9802d9226d626f783a6d61696c746f3a6c6561726e6572406578616d706c652e676f762e766e03dc0017d924303030303030"
    "30302d303030302d303030302d303030302d303030303030303030303031bb323032352d30332d30315430383a31303a3030"
    "2e3030303030305ad925687474703a2f2f61646c6e65742e676f762f6578706170692f76657262732f706173736564bb3230"
    "32352d30342d30315430303a30303a30302e3030303030305ad93e68747470733a2f2f6c72732e6578616d706c652e6f7267"
    "2f636f6d706574656e63792f646967636f6d702f322e322f636f6d706574656e6365732f312e31a132d95468747470733a2f"
    "2f6c72732e6578616d706c652e6f72672f636f75727365732f636976696c2d73657276616e742d62617369632d6469676974"
    "616c2d736b696c6c732f6d6f64756c65732f736561726368696e67aa6571756976616c656e74b2436f6d706c65746564416e"
    "64506173736564d94368747470733a2f2f6c72732e6578616d706c652e6f72672f636f6d706574656e63792f766e2d747430"
    "322d323032352f312e302f636f6d706574656e6365732f312e31a3434232a9616c69676e6d656e74ab696e5f70726f677265"
    "7373d94e68747470733a2f2f6c72732e6578616d706c652e6f72672f636f6d706574656e63792f70726f6772616d732f6369"
    "76696c2d73657276616e742d62617369632d6469676974616c2d736b696c6c73a6323032352e31d94368747470733a2f2f6c"
    "72732e6578616d706c652e6f72672f636f6d706574656e63792f766e2d747430322d323032352f312e302f636f6d70657465"
    "6e6365732f312e32d94368747470733a2f2f6c72732e6578616d706c652e6f72672f636f6d706574656e63792f766e2d7474"
    "30322d323032352f312e302f636f6d706574656e6365732f322e31d94368747470733a2f2f6c72732e6578616d706c652e6f"
    "72672f636f6d706574656e63792f766e2d747430322d323032352f312e302f636f6d706574656e6365732f322e33d9436874"
    "7470733a2f2f6c72732e6578616d706c652e6f72672f636f6d706574656e63792f766e2d747430322d323032352f312e302f"
    "636f6d706574656e6365732f332e31d94368747470733a2f2f6c72732e6578616d706c652e6f72672f636f6d706574656e63"
    "792f766e2d747430322d323032352f312e302f636f6d706574656e6365732f342e31d94368747470733a2f2f6c72732e6578"
    "616d706c652e6f72672f636f6d706574656e63792f766e2d747430322d323032352f312e302f636f6d706574656e6365732f"
    "342e32d94368747470733a2f2f6c72732e6578616d706c652e6f72672f636f6d706574656e63792f766e2d747430322d3230"
    "32352f312e302f636f6d706574656e6365732f352e31d94368747470733a2f2f6c72732e6578616d706c652e6f72672f636f"
    "6d706574656e63792f766e2d747430322d323032352f312e302f636f6d706574656e6365732f362e3290919a000102c0c2cb"
    "3feccccccccccccdc0c00392980405020607c308cb3fe666666666666698090a02060bc308cb3fe6666666666666929b040c"
    "c0cb3feccccccccccccdcb3feccccccccccccd010101c090039b090cc0cb3feccccccccccccdcb3feccccccccccccd010101"
    "c0900391990d0ec2c0909099090f1011121314151603c0"
)


def test_a_state_stored_uncompressed_before_still_decodes_and_digests_alike() -> None:
    state = run(*POOL[:1])
    assert OLD_FORM[:1] == b"\x98"
    assert decode_state(OLD_FORM) == state
    stored = encode_state(state)
    # the layout inside the new form is the old form byte for byte, so the
    # audit digest of a row is the same whichever form it was stored in
    assert open_state(stored) == OLD_FORM == digest_bytes(OLD_FORM) == digest_bytes(stored)


def test_a_state_is_stored_as_one_zstd_frame_a_third_of_its_layout() -> None:
    state = run(*POOL)
    stored = encode_state(state)
    layout = open_state(stored)
    assert stored[:4] == MAGIC
    assert zstandard.get_frame_parameters(stored).content_size == len(layout)
    assert len(stored) * 2 < len(layout)
    assert decode_state(stored) == state


@pytest.mark.parametrize(
    "raw",
    [
        MAGIC + b"\x00" * 20,  # a frame header and no frame
        zstandard.ZstdCompressor().compress(b"\x98")[:-1],  # cut short
        zstandard.ZstdCompressor().compress(b"\x98") + b"more",  # bytes after the frame
        zstandard.ZstdCompressor().compress(b"tampered"),  # a frame that holds no state
    ],
)
def test_a_damaged_or_foreign_frame_is_refused_with_a_clear_error(raw: bytes) -> None:
    with pytest.raises(StateFormatError):
        decode_state(raw)
    assert digest_bytes(b"tampered") == b"tampered"


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
