"""The state of the learner keys (:class:`lrs.store.learner_keys.LearnerKeys`)
and its cache: pseudonyms, live keys by identity, ciphers by generation,
sealed and opened forms, all bounded (the oldest out first); what an erasure
heard of drops (:meth:`LearnerKeyCache.forget`), the key epoch the cache is
valid for (:meth:`LearnerKeyCache.catch_up`), and the master key's check at
start.  The parts that seal, open, read or make keys and hear announcements
extend it (:mod:`lrs.store.learner_key_sealing`,
:mod:`lrs.store.learner_key_opening`, :mod:`lrs.store.learner_key_statement`,
:mod:`lrs.store.learner_key_announcements`)."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import asyncpg
import msgspec
from cryptography.exceptions import InvalidTag

from lrs.privacy import seal, sealed_text
from lrs.privacy.data_key import SealKey, new_data_key_cipher
from lrs.privacy.master import MasterKey, PrivacyKeyError
from lrs.store.learner_key_sql import RECORD_KEY_ID, SELECT_KEY_EPOCH, SELECT_ONE_LIVE
from lrs.store.learner_key_table import CipherTable, FormTable, KeyTable, TextTable
from lrs.store.sealed_identities import StoredCiphertexts
from lrs.store.unconfirmed_keys import EARLIEST, UnconfirmedKeys
from lrs.store.unconfirmed_keys import identity_key as _id

__all__ = ["LearnerKeyCache", "OpenedForm", "Pool", "cipher_id", "drop_oldest_half", "opened_id"]

Pool = asyncpg.Pool | asyncpg.Connection

# Of the identities a process has not cached lately, the share that had a
# key already moves by this much for each one learned of
# (lrs.store.learner_key_sealing.READ_FIRST_ABOVE).
_SHARE_STEP = 1 / 16


def drop_oldest_half(cache: dict[Any, Any]) -> None:
    """Remove the first-inserted half of ``cache`` (a bounded cache that is
    full: emptying it whole would leave a population larger than the bound
    with half the hits)."""
    _drop_oldest(cache, len(cache) // 2 or 1)


def _drop_oldest(cache: dict[Any, Any], count: int) -> None:
    """Remove the ``count`` first-inserted entries of ``cache`` (in one go:
    removing a dict's first entry one at a time walks over the ones removed
    before)."""
    for key in list(itertools.islice(cache, count)):
        del cache[key]


def cipher_id(tenant: str, pseudonym: str, generation: int | str = "") -> str:
    """:attr:`LearnerKeys._ciphers`' key of one generation of an identity's
    key (with no generation, the prefix of all its generations' keys)."""
    return f"{_id(tenant, pseudonym)}\x00{generation}"


def opened_id(tenant: str, own: bytes) -> bytes:
    """:attr:`LearnerKeys._opened`'s key of a tenant's sealed form: bytes,
    which the garbage collector does not track (see :func:`_id`)."""
    return tenant.encode() + b"\x00" + own


class OpenedForm(msgspec.Struct, frozen=True, gc=False):
    """A sealed form opened before (:meth:`LearnerKeys.open_payloads`): the
    (pseudonym, generation) keys it is sealed under and its opened JSON.
    Not tracked by the garbage collector (a tuple is until a collection
    sees it, and makes the cache it is put in tracked again)."""

    refs: tuple[tuple[str, int], ...]
    opened: bytes


class LearnerKeyCache:
    """The keys of the identities of any tenant that a process has cached,
    and the state the other parts of :class:`lrs.store.learner_keys.LearnerKeys`
    share (one object: an erasure heard of drops the keys of every part)."""

    def __init__(
        self, pool: Pool, master: MasterKey, *, capacity: int = 250_000, references: bool = True,
        key_pool: Pool | None = None, wait_ms: float = 0.0,
    ) -> None:
        self._pool = pool
        # Where the statements that read or make keys for writing run: a pool
        # whose connections are not reset after each (lrs.store.pool.
        # create_statement_pool), so a batch of first sights costs one
        # PostgreSQL transaction and one round trip, not two of each.
        self._key_pool = pool if key_pool is None else key_pool
        # How long a key statement waits for more requests to share it (as
        # the group commit does: LRS_GROUP_COMMIT_WAIT_MS).
        self._wait = max(wait_ms, 0.0) / 1000.0
        # Seal in the v3 form (ciphertexts apart, by reference); False: v2,
        # the ciphertext inside the Statement (as stores written before hold).
        self._references = references
        # Which of them: v4 (short tags) unless set to "v3" (as builds before v4 wrote).
        self._reference_form = sealed_text.SHORT
        # v3 ciphertexts read, by reference (immutable: content-addressed).
        self._ciphertexts = StoredCiphertexts(pool, capacity=capacity)
        self._master = master
        self._capacity = max(capacity, 1)
        # Nothing per identity for the garbage collector to walk, nor any
        # object a learner at all: the live key by identity (the least
        # recently stored first out), ciphers by generation (None once
        # erased), pseudonyms, sealed forms, each a table packed in one
        # bytearray (lrs.store.learner_key_table), whose every operation does
        # a bounded amount of work (branch seal6: seal5's rebuilt a full one
        # whole).  One tracked object per
        # identity (a DataKey was one) made every full collection visit
        # each cached identity: 9 ms for 50,000 learners, some 15% of a
        # sealing worker's CPU at batch 100 (bench/seal_gc_heap.py;
        # docs/privacy.md "The collector and the learner caches"); and the
        # untracked strings and structs that replaced them, made one
        # learner at a time among each request's objects, slowed the rest
        # of the worker through the heap's layout (docs/privacy.md, "Sealing's
        # cost and the heap's layout (branch seal4)"; the tables: branch seal5).
        self._current = KeyTable()  # by _id(tenant, pseudonym)
        self._ciphers = CipherTable()  # by _id(tenant, pseudonym), each generation's in its record
        self._pseudonyms = TextTable()  # by _id(tenant, identifier)
        # tenant -> an Agent's sorted JSON -> its sealed form (objectType, pseudonym, generation, text)
        self._sealed: dict[str, FormTable] = {}
        self._sealed_count = 0  # of every tenant's: the capacity bounds them together
        # tenant NUL a sealed form's sorted JSON (opened_id) -> its refs and opened JSON: open_payloads'
        # (about 0.75 KB an entry, at most a quarter of the capacity: the learners being read).  Bytes
        # keys and untracked structs, as the caches above: the collector skips the dict whole.
        self._opened: dict[bytes, OpenedForm] = {}
        self.trust_cache = True
        # The last erasure (log_head.key_epoch) the cache is known to reflect.
        self.epoch = 0
        self._version = 0  # moves on every forget: a key loaded before is not cached
        # Per tenant: the identities to load next, and those being loaded, with
        # the future their keys (by pseudonym) arrive in (and for those being
        # loaded, the cache's version when their statement was sent).
        self._next: dict[str, tuple[set[str], asyncio.Future[dict[str, SealKey]]]] = {}
        self._loading: dict[str, tuple[set[str], asyncio.Future[dict[str, SealKey]], int]] = {}
        self._loaders: dict[str, asyncio.Task[None]] = {}
        # Keys made for identities not cached and not known to be committed
        # yet ((tenant, pseudonym) -> wrapped, key): every request sealing
        # such an identity meanwhile uses the same one, so that requests of
        # one process naming a new learner agree (lrs.store.group_keys).
        self._made: dict[tuple[str, str], tuple[bytes, SealKey]] = {}
        # Of the identities not cached lately, the share that had a key already
        # (lrs.store.learner_key_sealing.READ_FIRST_ABOVE).
        self._known_share = 0.0
        # Keys sealed under that are not known to be on disk (lrs.store.unconfirmed_keys).
        self._unconfirmed = UnconfirmedKeys(max(self._capacity // 4, 1024))
        # No later than the opening of the connection that listens now: the
        # stamp of the keys heard of (a notification is sent only to a
        # session listening before its transaction committed).
        self._listening_since = EARLIEST
        # Keys heard of and noted with that stamp since the listening
        # connection's last answered probe: _id -> (heard at, generation),
        # in the order heard (listener_alive).
        self._heard: dict[str, tuple[float, int]] = {}

    def _learned(self, known: int, new: int) -> None:
        """``known`` identities this process had not cached had a key already, ``new`` had none."""
        total = known + new
        if total:
            self._known_share += min(1.0, _SHARE_STEP * total) * (known / total - self._known_share)

    # -- pseudonyms ---------------------------------------------------------

    def pseudonym(self, tenant: str, ident: str) -> str:
        cache_key = _id(tenant, ident)
        found = self._pseudonyms.get(cache_key)
        if found is None:
            found = seal.pseudonym(self._master.pseudonym_key, tenant, ident)
            if len(self._pseudonyms) >= self._capacity:
                self._pseudonyms.drop_oldest_half()
            self._pseudonyms.set(cache_key, found)
        return found

    def pseudonym_key(self, tenant: str, ident: str) -> str:
        """The IFI key filters and projections know this identity by."""
        return f"account:{seal.PSEUDONYM_HOME}|{self.pseudonym(tenant, ident)}"

    def pseudonymous(self, tenant: str, agent: dict[str, Any]) -> dict[str, Any]:
        """``agent`` as filters see it once sealed (:func:`lrs.privacy.seal.pseudonymous`)."""
        return seal.pseudonymous(agent, lambda ident: self.pseudonym(tenant, ident))

    # -- cache --------------------------------------------------------------

    def cached(self, tenant: str, pseudonym: str) -> SealKey | None:
        """The live key this process has cached for the identity, if any."""
        return self._current.get(_id(tenant, pseudonym))

    def cached_generations(self, tenant: str, pseudonym: str) -> list[int]:
        """The generations of the identity's keys whose ciphers are cached."""
        return self._ciphers.generations(_id(tenant, pseudonym))

    def forget(self, tenant: str, pseudonym: str) -> None:
        """Drop one identity's keys (it was erased somewhere)."""
        self._version += 1
        self._current.pop(_id(tenant, pseudonym))
        self._made.pop((tenant, pseudonym), None)
        self._unconfirmed.forget(tenant, pseudonym)
        self._heard.pop(_id(tenant, pseudonym), None)
        self._ciphers.forget(_id(tenant, pseudonym))
        self._sealed.clear()  # erasures are rare; which forms were its is not kept
        self._sealed_count = 0
        self._opened.clear()

    def forget_all(self) -> None:
        self._version += 1
        self._current.clear()
        self._made.clear()
        self._unconfirmed.clear()
        self._heard.clear()
        self._ciphers.clear()
        self._sealed.clear()
        self._sealed_count = 0
        self._opened.clear()

    def catch_up(self, epoch: int) -> None:
        """The database's key epoch was seen at ``epoch``: when the cache is
        behind it (a notification not heard yet, or none since start), it is
        emptied and is valid for that epoch."""
        if epoch > self.epoch:
            self.forget_all()
            self.epoch = epoch

    async def check_master_key(self) -> None:
        """Raises :class:`lrs.privacy.master.PrivacyKeyError` when the master
        key is not the one the database's learner keys are wrapped with
        (another key file: one made on a host of its own, or a new one made
        where the old one was lost).  The first start records the key's id.
        A store that holds keys starts the process reading keys first."""
        mismatch = PrivacyKeyError(
            "the privacy key file is not the key this database's learner keys were made with: give every "
            "process the same file (LRS_PRIVACY_KEY_FILE), or restore the one that was lost"
        )
        row = await self._pool.fetchrow(SELECT_ONE_LIVE)
        if row is not None:
            # A store that holds keys: the learners this process (just
            # started) has not cached are known ones until it learns
            # otherwise (learner_key_sealing.READ_FIRST_ABOVE).  From 0, a restart made a key for
            # each learner of ten of its first sixteen single-Statement requests,
            # each refused and sealed twice; reading first costs a new
            # learner one shared key statement instead.
            self._known_share = 1.0
            try:
                self._master.unwrap(row["wrapped"], row["tenant"], row["pseudonym"], row["generation"])
            except InvalidTag:
                raise mismatch from None
        recorded = await self._pool.fetch(RECORD_KEY_ID, self._master.key_id)
        if any(r["key_id"] != self._master.key_id for r in recorded):
            raise mismatch

    async def load_epoch(self) -> None:
        """Start from the database's key epoch (once listening)."""
        self.catch_up(await self._pool.fetchval(SELECT_KEY_EPOCH))

    def _cipher(self, wrapped: bytes, tenant: str, pseudonym: str, generation: int) -> Any:
        return new_data_key_cipher(self._master.unwrap(wrapped, tenant, pseudonym, generation))

    def _remember(self, tenant: str, pseudonym: str, generation: int, cipher: Any, version: int,
                  wrapped: bytes | None = None, stamp: float | None = None) -> SealKey:
        """The key; cached unless the cache was emptied since ``version``
        (it may have been read before an erasure the cache heard of).  With
        a ``stamp``, not known to be on disk: noted, cached or not, so that
        the requests sealed under it carry it (:mod:`lrs.store.unconfirmed_keys`)."""
        key = SealKey(pseudonym, generation, cipher)
        if stamp is not None and wrapped is not None:
            for dropped in self._unconfirmed.note(tenant, pseudonym, generation, wrapped, stamp):
                self._current.pop(dropped)  # not sealed under again without being noted again
        if version == self._version:
            cache_key = _id(tenant, pseudonym)
            # Room is made only for an identity not held: one stored again
            # replaces itself (as the dict did, popped first).
            if len(self._current) >= self._capacity and cache_key.encode() not in self._current:
                self._current.drop_oldest(max(len(self._current) // 16, 1))
            self._current.set(cache_key, key)  # to the end: the most recently stored
            self._keep_cipher(cipher_id(tenant, pseudonym, generation), cipher)
        return key

    def _keep_cipher(self, cipher_key: str, cipher: Any) -> None:
        """Caches one generation's cipher (None: erased), half the oldest out when full."""
        if len(self._ciphers) >= 2 * self._capacity:
            self._ciphers.drop_oldest_half()
        self._ciphers.set(cipher_key, cipher)
