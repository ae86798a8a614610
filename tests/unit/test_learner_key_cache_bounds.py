"""The bounds of the learner key cache (lrs.store.learner_key_cache) as
the dicts before the packed tables kept them: a full cache of live keys
makes room only for an identity it does not hold."""

from __future__ import annotations

import os

from lrs.privacy.data_key import new_data_key_cipher
from lrs.privacy.master import MasterKey
from lrs.store.learner_keys import LearnerKeys


def test_a_full_cache_storing_a_key_it_holds_again_evicts_nothing_and_moves_it_to_the_end():
    keyring = LearnerKeys(None, MasterKey(os.urandom(32)), capacity=32)  # type: ignore[arg-type]
    cipher = new_data_key_cipher(os.urandom(32))
    for n in range(32):
        keyring._remember("t", f"p{n}", 1, cipher, keyring._version)
    assert len(keyring._current) == 32
    # Read again (a key statement two requests shared, a load after a
    # notification): the same identity, the cache holds it already.
    keyring._remember("t", "p0", 1, cipher, keyring._version)
    assert len(keyring._current) == 32
    assert all(keyring.cached("t", f"p{n}") is not None for n in range(32))
    # It is now the most recently stored: the next identity evicts p1 first, not p0.
    keyring._remember("t", "p32", 1, cipher, keyring._version)
    assert keyring.cached("t", "p0") is not None and keyring.cached("t", "p1") is None
