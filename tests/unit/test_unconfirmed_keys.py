"""The keys a process seals under that are not known to be on disk
(lrs/store/unconfirmed_keys.py): noted with a stamp, carried by the requests
sealed under them, confirmed by a committed Statement, and never dropped
from the notes while the key cache can still seal under them."""

from __future__ import annotations

import math
import os
import time

from lrs.batching import AppendRequest
from lrs.privacy.data_key import new_data_key_cipher
from lrs.privacy.master import MasterKey
from lrs.store.learner_keys import LearnerKeys
from lrs.store.unconfirmed_keys import EARLIEST, UnconfirmedKeys, unconfirmed_before_session


def test_a_request_carries_its_unconfirmed_keys_and_their_earliest_stamp_until_confirmed() -> None:
    notes = UnconfirmedKeys(100)
    notes.note("t", "a", 1, b"wa", 5.0)
    notes.note("t", "b", 2, b"wb", 3.0)
    notes.note("u", "a", 1, b"other tenant", 1.0)
    assert notes.of("t", [("a", 1), ("b", 2), ("c", 1)]) == ({"a": (1, b"wa"), "b": (2, b"wb")}, 3.0)
    assert notes.of("t", [("a", 2)]) == ({}, math.inf)  # another generation than the one noted
    notes.confirm("t", [("b", 2)])
    assert notes.of("t", [("a", 1), ("b", 2)]) == ({"a": (1, b"wa")}, 5.0)
    notes.forget("t", "a")
    assert notes.of("t", [("a", 1)]) == ({}, math.inf)
    assert notes.of("u", [("a", 1)]) == ({"a": (1, b"other tenant")}, 1.0)


def test_a_full_note_drops_its_oldest_half_and_says_which() -> None:
    notes = UnconfirmedKeys(4)
    for name in "abcd":
        assert not notes.note("t", name, 1, b"w", 1.0)
    notes.note("t", "a", 1, b"w", 2.0)  # noted again: now the latest
    assert list(notes.note("t", "e", 1, b"w", 3.0)) == ["t\x00b", "t\x00c"]
    assert notes.of("t", [("a", 1), ("b", 1), ("d", 1), ("e", 1)])[0].keys() == {"a", "d", "e"}


def test_a_key_whose_note_is_dropped_leaves_the_cache_with_it() -> None:
    keyring = LearnerKeys(None, MasterKey(os.urandom(32)), capacity=8000)  # notes: 2,000
    cipher = new_data_key_cipher(os.urandom(32))
    for n in range(2001):
        keyring._remember("t", f"p{n}", 1, cipher, keyring._version, b"w", float(n))
    dropped = [n for n in range(2001) if keyring._unconfirmed.of("t", [(f"p{n}", 1)])[0] == {}]
    assert dropped == list(range(1000))
    # No request can be sealed under a key no longer noted: it must be read (and noted) again.
    assert all(keyring.cached("t", f"p{n}") is None for n in dropped)
    assert all(keyring.cached("t", f"p{n}") is not None for n in range(1000, 2001))


def test_a_key_heard_of_is_stamped_by_the_first_probe_its_listening_session_answered_after_it() -> None:
    """Heard of, a key is stamped from before the listening connection opened,
    which the writer's sessions (opened later) never prove; once that session
    answers a probe sent after the key was delivered, no crash came between
    the key's commit and the probe: the probe's time is its stamp."""
    master = MasterKey(os.urandom(32))
    keyring = LearnerKeys(None, master)
    keyring.not_listening()  # as the service before its listening connection opens
    keyring.forget_all()
    keyring.trust_cache = True
    opened = time.monotonic()
    pseudonym = keyring.pseudonym("t", "mbox:mailto:lan@example.org")
    wrapped = master.wrap(os.urandom(32), "t", pseudonym, 1)
    keyring.listener_alive(opened)  # a probe sent before it was heard proves nothing of it
    keyring.heard(f"t {pseudonym} 1:{wrapped.hex()}:0")
    [(_, stamp)] = [keyring._unconfirmed.of("t", [(pseudonym, 1)])]
    assert stamp < opened
    sent = time.monotonic()
    keyring.listener_alive(sent)
    assert keyring._unconfirmed.of("t", [(pseudonym, 1)]) == ({pseudonym: (1, wrapped)}, sent)


def test_a_request_is_proposed_again_when_its_unconfirmed_keys_were_seen_before_the_session_began() -> None:
    """The one condition the writer and the group's key proposal
    (lrs.store.group_keys) ask: keys not known to be on disk, seen committed
    no later than the group connection's session began (a crash may have come
    between), and nothing else."""
    def sealed(since: float, keys: dict[str, tuple[int, bytes]] | None = None) -> AppendRequest:
        return AppendRequest("t", [], unconfirmed_keys={"p": (1, b"w")} if keys is None else keys,
                             unconfirmed_since=since)

    assert unconfirmed_before_session(sealed(5.0), 10.0)  # seen before the session began
    assert unconfirmed_before_session(sealed(10.0), 10.0)  # at its start: both moments are bounds, not proof
    assert not unconfirmed_before_session(sealed(10.5), 10.0)  # seen since: the session's COMMIT flushes it
    assert unconfirmed_before_session(sealed(EARLIEST), -1e9)  # read by a refused group: whatever the session
    assert unconfirmed_before_session(sealed(5.0), math.inf)  # the lease's session ended: proposed again
    assert not unconfirmed_before_session(sealed(math.inf, {}), math.inf)  # no unconfirmed key: nothing to propose
    assert not unconfirmed_before_session(AppendRequest("t", []), 10.0)
