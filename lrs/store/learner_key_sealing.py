"""Sealing Statements (docs/privacy.md): with the cached keys, a key made
here for each of a few identities not cached (inserted by the group commit:
:mod:`lrs.store.group_keys`), or the keys the key statement reads or makes
(:mod:`lrs.store.learner_key_statement`); and what the group commit
answered for them (:meth:`KeySealing.stored`, :meth:`KeySealing.taken`)."""

from __future__ import annotations

import math
import secrets
from typing import Any, Iterable

import msgspec

from lrs.metrics import LEARNER_KEYS_REFUSED
from lrs.privacy import statement_agents, statement_sealer
from lrs.privacy.data_key import SealKey, new_data_key_cipher
from lrs.store.learner_key_cache import LearnerKeyCache, drop_oldest_half
from lrs.store.learner_key_statement import KeyStatement
from lrs.store.learner_key_table import FormTable
from lrs.store.unconfirmed_keys import EARLIEST
from lrs.store.unconfirmed_keys import identity_key as _id

__all__ = ["KeySealing", "MAKE_KEYS_UP_TO", "READ_FIRST_ABOVE", "Sealed"]

# With make_keys, the most identities of one request a process makes keys
# for itself (lrs.store.group_keys); a request missing more reads or makes
# them with LOAD_OR_CREATE first.  A request is refused when any key it
# made is not its identity's live key (one the other worker made, one this
# process evicted), and then sealed whole again and sent to a second group
# commit: at batch 100 on a fresh store nearly every request named a learner
# another worker had made, and sealing twice cost more than the key
# statement it saved, whose transaction is shared by the request's 100
# statements (0.02 transactions a statement).  A single statement misses at
# most its actor's and the authority's, plus a team's or an instructor's.
MAKE_KEYS_UP_TO = 4
# Whether an identity this process has not cached is new (no key yet) or
# known to the store (a key this process never heard of: it started, or
# restarted, after the key was made; or the cache dropped it) is learned
# from what the key statements and the group commit answer, as a moving
# share of the last few dozen such identities (LearnerKeys._known_share).
# Above READ_FIRST_ABOVE the keys are read before sealing even for a few
# missing identities: a key made for a known identity is refused, and its
# whole request sealed twice and sent through two group commits, where one
# key statement is shared by the requests that wait at the same moment.
READ_FIRST_ABOVE = 0.5


class _CachedKeys(dict):
    """Identifier -> cached live key; a KeyError for one not cached."""

    def __init__(self, owner: LearnerKeyCache, tenant: str) -> None:
        super().__init__()
        self._owner = owner
        self._tenant = tenant

    def __missing__(self, ident: str) -> SealKey:
        key = self._owner._current.get(_id(self._tenant, self._owner.pseudonym(self._tenant, ident)))
        if key is None:
            raise KeyError(ident)
        self[ident] = key
        return key


_NO_FORMS: dict[bytes, statement_sealer.KnownForm] = {}


def _not_cached(ident: str) -> SealKey:
    raise KeyError(ident)


class Sealed(msgspec.Struct, frozen=True):
    """Statements and their authority as :meth:`LearnerKeys.seal_statements`
    sealed them: the cache's ``epoch`` then and every (pseudonym,
    generation) sealed under, which the writer checks when an erasure came
    after that epoch (:class:`lrs.batching.AppendRequest`); and the v3
    ciphertexts by reference that the Statements name and no request stored
    before: the writer inserts them with the Statements.  ``forms``: the
    sealed forms to reuse once they are committed (:meth:`LearnerKeys.stored`)."""

    statements: list[dict[str, Any]]
    authority: dict[str, Any]
    epoch: int
    refs: frozenset[tuple[str, int]]
    ciphertexts: dict[bytes, bytes] = {}
    forms: dict[bytes, statement_sealer.KnownForm] = {}
    version: int = -1  # of the key cache when sealed (LearnerKeys._version)
    tenant: str = ""
    # The keys made for identities not cached, which the Statements are
    # sealed under (generation 1, wrapped, by pseudonym): the writer inserts
    # them in the group commit (lrs.store.group_keys).
    new_keys: dict[str, bytes] = {}
    # The keys it is sealed under that are not known to be on disk
    # ((generation, wrapped) by pseudonym), and the earliest moment they
    # were seen committed (lrs.store.unconfirmed_keys): a group on a
    # connection opened since proposes them again.
    unconfirmed: dict[str, tuple[int, bytes]] = {}
    unconfirmed_since: float = math.inf


class KeySealing(KeyStatement):
    """Seals Statements, and settles the keys made for them once the group commit answered."""

    async def seal_statements(
        self, tenant: str, statements: list[dict[str, Any]], authority: dict[str, Any], *, make_keys: bool = False
    ) -> Sealed:
        """The Statements and the authority with every identity sealed: one
        walk (:class:`lrs.privacy.statement_sealer.StatementSealer`), the keys not cached
        read (or made) after it, for the Agents that need them.

        ``make_keys``: the keys not cached (at most :data:`MAKE_KEYS_UP_TO`) are made here, without asking
        PostgreSQL, and returned in :attr:`Sealed.new_keys`; the caller must
        hand those to the Statement writer with the Statements, which stores
        them in the same transaction or refuses the request
        (:mod:`lrs.store.group_keys`; then :meth:`taken`, and seal again
        without ``make_keys``)."""
        epoch, version = self.epoch, self._version
        if self.trust_cache:
            # Sealed forms are reused only once their ciphertexts are
            # committed (stored()): a form from the cache names a stored one.
            forms = self._sealed.get(tenant, _NO_FORMS)
            key_of = _CachedKeys(self, tenant).__getitem__
        else:
            forms, key_of = _NO_FORMS, _not_cached
        sealer = statement_sealer.StatementSealer(tenant, forms, key_of, references=self._references,
                                        reference_form=self._reference_form)
        sealed_authority = sealer.agent(authority)
        sealed = [statement_agents.seal_statement(s, sealer.agent) for s in statements]
        new_keys: dict[str, bytes] = {}
        # The cached keys sealed under that are not confirmed, asked before
        # any wait: a note dropped meanwhile (UnconfirmedKeys) is not missed.
        unconfirmed, since = self._unconfirmed.of(tenant, sealer.refs)
        if sealer.missing:
            if (make_keys and self.trust_cache and len(sealer.missing) <= MAKE_KEYS_UP_TO
                    and self._known_share <= READ_FIRST_ABOVE):
                keys = {ident: self._key_made(tenant, ident, new_keys) for ident in sealer.missing}
            else:
                # Not asked of the notes after the wait: they may be gone.
                keys, loaded, loaded_since = await self._keys_noted(tenant, sealer.missing)
                unconfirmed, since = {**unconfirmed, **loaded}, min(since, loaded_since)
            sealer.finish(keys)
        return Sealed(sealed, sealed_authority, epoch, frozenset(sealer.refs), sealer.ciphertexts, sealer.fresh,
                      version, tenant, new_keys, unconfirmed, since)

    def _key_made(self, tenant: str, ident: str, new_keys: dict[str, bytes]) -> SealKey:
        """The key made here for an identity not cached (the one made before
        while it is not known to be committed); its wrapped form in ``new_keys``."""
        pseudonym = self.pseudonym(tenant, ident)
        made = self._made.get((tenant, pseudonym))
        if made is None:
            data_key = secrets.token_bytes(32)
            made = (self._master.wrap(data_key, tenant, pseudonym, 1),
                    SealKey(pseudonym, 1, new_data_key_cipher(data_key)))
            if len(self._made) >= self._capacity:
                drop_oldest_half(self._made)
            self._made[(tenant, pseudonym)] = made
        new_keys[pseudonym] = made[0]
        return made[1]

    def _settle_made(self, sealed: Sealed, live: dict[str, tuple[int, bytes]], stamp: float | None = None) -> None:
        """The group commit answered for ``sealed``'s new keys: ``live``, each
        identity's live key (generation, wrapped) as it read it, is cached
        (unless the cache forgot anything since the request was sealed) and
        the keys made here are no longer pending.  ``stamp``: of keys not
        known to be on disk (:meth:`_remember`)."""
        for pseudonym, wrapped in sealed.new_keys.items():
            cache_key = (sealed.tenant, pseudonym)
            made = self._made.get(cache_key)
            if made is not None and made[0] == wrapped:
                del self._made[cache_key]
            key = live.get(pseudonym)
            if key is None or sealed.version != self._version:
                continue
            generation, stored = key
            cached = self._current.get(_id(sealed.tenant, pseudonym))
            if made is None and cached is not None and cached.generation == generation:
                continue  # heard of already (the group's notification): the one live key
            if made is not None and made[0] == stored and generation == 1:
                cipher = made[1].cipher
            else:
                cipher = self._cipher(stored, sealed.tenant, pseudonym, generation)
            self._remember(sealed.tenant, pseudonym, generation, cipher, sealed.version, stored, stamp)

    def taken(self, sealed: Sealed, live: dict[str, tuple[int, bytes]], checked: Iterable[str] = ()) -> None:
        """The writer refused ``sealed``: an identity it made a key for has
        another live key, or none (:class:`lrs.store.group_keys.KeyTakenMeanwhile`
        with ``live``, the live keys it read).  Those are cached, to seal again with."""
        LEARNER_KEYS_REFUSED.inc()
        known = sum(1 for p, wrapped in sealed.new_keys.items() if live.get(p) != (1, wrapped))
        self._learned(known, len(sealed.new_keys) - known)
        # Read in a group's transaction: maybe another process's key statement's, not on disk yet.
        self._settle_made(sealed, live, EARLIEST)
        for pseudonym in checked:  # ``checked``: the identities whose keys the group compared
            key = sealed.unconfirmed.get(pseudonym)
            if key is not None and live.get(pseudonym) != key:  # lost in a crash, or erased: read again
                self.forget(sealed.tenant, pseudonym)

    def stored(self, sealed: Sealed, *, inserted: bool = True) -> None:
        """``sealed``'s Statements were committed, and with them its
        ciphertexts: its sealed forms may be reused (a later request that
        names an identity the same way then carries no ciphertext).
        ``inserted``: a Statement of it was (its COMMIT flushed the WAL, and
        with it every key it is sealed under; a transaction that wrote
        nothing does not flush)."""
        if sealed.unconfirmed and inserted:
            self._unconfirmed.confirm(sealed.tenant, ((p, g) for p, (g, _) in sealed.unconfirmed.items()))
        if sealed.new_keys:  # committed with the Statements: now the live keys, on disk
            self._unconfirmed.confirm(sealed.tenant, ((p, 1) for p in sealed.new_keys))
            self._learned(0, len(sealed.new_keys))
            self._settle_made(sealed, {p: (1, w) for p, w in sealed.new_keys.items()})
        if sealed.forms and self.trust_cache and self._version == sealed.version:
            while self._sealed_count and self._sealed_count + len(sealed.forms) > self._capacity:
                # The oldest half out, not all: with more learners than the
                # capacity, emptying it all kept it half as full on average.
                for forms in self._sealed.values():
                    forms.drop_oldest_half()
                self._sealed_count = sum(len(forms) for forms in self._sealed.values())
            cache = self._sealed.get(sealed.tenant)
            if cache is None:
                cache = self._sealed[sealed.tenant] = FormTable()
            before = len(cache)
            cache.update(sealed.forms)
            self._sealed_count += len(cache) - before
