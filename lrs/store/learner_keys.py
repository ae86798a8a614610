"""The data keys of sealed identities: the ``learner_keys`` table and an
in-process cache (docs/privacy.md).

:class:`LearnerKeys` seals Statements before they are appended and opens
stored ones for reading.  Data keys are cached (bounded, least recently
used first out) unwrapped; an erasure in any process sends
``NOTIFY lrs_learner_keys, '<tenant> <pseudonym> <epoch>'`` and every
process drops that identity's keys (:meth:`LearnerKeys.forget`).  While the
listening connection is down the cache is not used
(:attr:`LearnerKeys.trust_cache`).

A notification arrives some milliseconds after the erasure commits.  So
that no process seals under, or opens with, a key destroyed in between,
every erasure adds one to ``log_head.key_epoch`` (under the log head lock)
and the cache knows the epoch it is valid for (:attr:`LearnerKeys.epoch`):
the statement writer checks, under the same lock, the keys of a request
sealed at an older epoch (:mod:`lrs.store.writer`), and reading with cached
keys first asks for the epoch (:meth:`LearnerKeys.ciphers_for_reading`).

Statements sent over HTTP are sealed with ``make_keys``: for an identity a
process has not cached it makes a key (generation 1) without asking
PostgreSQL, and the group commit that appends the Statements inserts it, or
refuses the request when the identity has another live key, to be sealed
again with that one (:mod:`lrs.store.group_keys`); every key made is
announced to the other processes
(:data:`lrs.store.learner_key_sql.ANNOUNCE_KEY`).  Otherwise
(documents, a request sealed again, a process whose listening connection is
down, one that finds the identities it has not cached mostly known:
:data:`lrs.store.learner_key_sealing.READ_FIRST_ABOVE`)
identities not cached are looked up, and for a new one a key made, in one
statement shared by the requests that need keys within a short wait, as the
group commit gathers Statements (:mod:`lrs.store.learner_key_statement`), on a connection
that is not reset after each (:func:`lrs.store.pool.create_statement_pool`).

Statements are sealed in the v4 form (:func:`lrs.privacy.sealed_text.seal_short`):
each identity's ciphertext is kept once in ``sealed_identities``
(:mod:`lrs.store.sealed_identities`), and a Statement carries only an
12-character tag (v3, written before, a 22-character reference).
:meth:`LearnerKeys.seal_statements` returns the new ciphertexts with the
sealed Statements; the Statement writer inserts them in the group commit
that appends those Statements.

One class, in parts that share one cache: its state, the pseudonyms and the
master key's check (:mod:`lrs.store.learner_key_cache`); the key statement
(:mod:`lrs.store.learner_key_statement`); sealing
(:mod:`lrs.store.learner_key_sealing`); opening
(:mod:`lrs.store.learner_key_opening`); the keys and erasures heard of
(:mod:`lrs.store.learner_key_announcements`); their SQL
(:mod:`lrs.store.learner_key_sql`).
"""

from __future__ import annotations

from lrs.store.learner_key_announcements import KeyAnnouncements
from lrs.store.learner_key_opening import KeyOpening
from lrs.store.learner_key_sealing import KeySealing

__all__ = ["LearnerKeys"]


class LearnerKeys(KeySealing, KeyOpening, KeyAnnouncements):
    """Seals and opens Statements of any tenant with the keys of the
    identities they name: one cache (:mod:`lrs.store.learner_key_cache`)
    that the sealing, opening, key statement and announcement parts share."""
