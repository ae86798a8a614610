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
announced to the other processes (:data:`ANNOUNCE_KEY`).  Otherwise
(documents, a request sealed again, a process whose listening connection is
down, one that finds the identities it has not cached mostly known:
:data:`READ_FIRST_ABOVE`)
identities not cached are looked up, and for a new one a key made, in one
statement shared by the requests that need keys within a short wait, as the
group commit gathers Statements (:data:`LOAD_OR_CREATE`), on a connection
that is not reset after each (:func:`lrs.store.pool.create_statement_pool`).

Statements are sealed in the v4 form (:func:`lrs.privacy.seal.seal_short`):
each identity's ciphertext is kept once in ``sealed_identities``
(:mod:`lrs.store.sealed_identities`), and a Statement carries only an
12-character tag (v3, written before, a 22-character reference).
:meth:`LearnerKeys.seal_statements` returns the new ciphertexts with the
sealed Statements; the Statement writer inserts them in the group commit
that appends those Statements.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import secrets
import time
from typing import Any, Iterable

import asyncpg
import msgspec
from cryptography.exceptions import InvalidTag

from lrs.metrics import LEARNER_KEYS_REFUSED
from lrs.privacy import seal
from lrs.privacy.master import MasterKey, PrivacyKeyError
from lrs.store.sealed_identities import StoredCiphertexts
from lrs.store.unconfirmed_keys import EARLIEST, UnconfirmedKeys
from lrs.store.unconfirmed_keys import identity_key as _id

__all__ = ["CHANGES_CHANNEL", "LearnerKeys", "Sealed"]

CHANGES_CHANNEL = "lrs_learner_keys"

# Every statement below looks each wanted identity up on its own (a LATERAL
# subquery with LIMIT runs once per identity, as an index lookup) rather
# than "pseudonym = ANY($2)" or a join with the wanted list: those a planner
# may answer by reading every key of the tenant, which it did in a new
# database before the table's first ANALYZE (its guess: a tenant holds
# 0.5% of the rows): 140-290 µs of PostgreSQL's CPU per learner once a
# tenant held 20,000 learners, growing with every learner
# (bench/seal_store_sql.py; docs/privacy.md "Cost").
SELECT_CURRENT = """
SELECT u.p AS pseudonym, k.generation, k.wrapped
FROM unnest($2::text[]) AS u(p)
CROSS JOIN LATERAL (
    SELECT max(generation) AS generation,
           (array_agg(wrapped) FILTER (WHERE wrapped IS NOT NULL))[1] AS wrapped
    FROM learner_keys WHERE tenant = $1 AND pseudonym = u.p
) AS k
WHERE k.generation IS NOT NULL
"""
# Every key made, whichever statement makes it, is announced to every
# process (delivered at COMMIT, in commit order with the erasures'
# notifications on the same channel: LearnerKeys.heard): the other workers
# cache it and do not make keys of their own for that learner, which the
# group commit would refuse (lrs.store.group_keys).  Keys made by
# LOAD_OR_CREATE were not announced: in a service with two workers every
# learner first seen in a request of more than MAKE_KEYS_UP_TO new ones
# stayed unknown to the other worker, whose next request naming a few such
# learners made keys, was refused and sealed again (one request in six at
# batch 100, 50,000 learners; docs/privacy.md "seal-b100").  The
# announcement carries the key epoch as of the statement: every erasure
# that can destroy the key commits after it, so with a higher epoch; a
# process whose cache is valid for a higher epoch already (it caught up
# with the log head's before its listener delivered this) may have counted
# that erasure and does not cache the key.  ``{tenant}``: the SQL of the
# row's tenant.
ANNOUNCE_KEY = (
    "pg_notify('" + CHANGES_CHANNEL + "', {tenant} || ' ' || pseudonym || ' ' || generation || ':' "
    "|| encode(wrapped, 'hex') || ':' || (SELECT key_epoch FROM log_head WHERE singleton))"
)
INSERT_KEYS = """
INSERT INTO learner_keys (tenant, pseudonym, generation, wrapped)
SELECT $1, p, g, w FROM unnest($2::text[], $3::int[], $4::bytea[]) AS u(p, g, w)
ON CONFLICT DO NOTHING
RETURNING pseudonym, %s AS announced
""" % ANNOUNCE_KEY.format(tenant="$1")
# The live key of one wanted identity (the primary key's (tenant, pseudonym) prefix).
_LIVE_KEY = """
CROSS JOIN LATERAL (
    SELECT generation, wrapped FROM learner_keys
    WHERE tenant = $1 AND pseudonym = u.p AND wrapped IS NOT NULL LIMIT 1
) AS k
"""
# The live keys of the identities a process has not cached, and for those
# never seen, a new key (generation 1) unless another process made one
# first: one statement.  An identity that has any key row has its
# generation 1 (generations count up from 1 and rows are never deleted), so
# the primary key's conflict alone leaves the known ones be: no lookup of
# its own.  Its transaction commits without waiting for the WAL
# flush (synchronous_commit off, set for it alone): every Statement sealed
# under a new key commits after it, synchronously, and that flush covers the
# key's earlier commit record -- when no crash came between, which the
# writer makes sure of for every key a request was sealed under that is not
# confirmed yet (lrs.store.unconfirmed_keys: proposed again by a group on a
# connection opened since the key was seen).
LOAD_OR_CREATE = """
WITH made AS (
    INSERT INTO learner_keys (tenant, pseudonym, generation, wrapped)
    SELECT $1, u.p, 1, u.w FROM unnest($2::text[], $3::bytea[]) AS u(p, w)
    ON CONFLICT DO NOTHING
    RETURNING pseudonym, generation, wrapped, set_config('synchronous_commit', 'off', true) AS quick,
              %s AS announced
)
SELECT pseudonym, generation, wrapped FROM made
UNION ALL
SELECT u.p AS pseudonym, k.generation, k.wrapped FROM unnest($2::text[]) AS u(p)""" % ANNOUNCE_KEY.format(tenant="$1") + _LIVE_KEY
SELECT_LIVE = "SELECT u.p AS pseudonym, k.generation, k.wrapped FROM unnest($2::text[]) AS u(p)" + _LIVE_KEY
SELECT_GENERATIONS = """
SELECT u.p AS pseudonym, u.g AS generation, k.wrapped
FROM unnest($2::text[], $3::int[]) AS u(p, g)
CROSS JOIN LATERAL (
    SELECT wrapped FROM learner_keys
    WHERE tenant = $1 AND pseudonym = u.p AND generation = u.g LIMIT 1
) AS k
"""
# The first statement of an erasure's transaction: takes the log head lock
# (so no Statement is written meanwhile) and counts the erasure.
BUMP_KEY_EPOCH = "UPDATE log_head SET key_epoch = key_epoch + 1 WHERE singleton RETURNING key_epoch"
SELECT_KEY_EPOCH = "SELECT key_epoch FROM log_head WHERE singleton"
# Destroys every generation's key of one identity; the caller's transaction
# also appends the erasure event.  $3: the epoch BUMP_KEY_EPOCH returned.
ERASE_KEYS = f"""
WITH erased AS (
    UPDATE learner_keys SET wrapped = NULL, erased_at = now()
    WHERE tenant = $1 AND pseudonym = $2 AND wrapped IS NOT NULL
    RETURNING generation
)
SELECT array_agg(generation ORDER BY generation) AS generations,
       pg_notify('{CHANGES_CHANNEL}', $1 || ' ' || $2 || ' ' || $3::bigint)
FROM erased
"""
SELECT_ONE_LIVE = "SELECT tenant, pseudonym, generation, wrapped FROM learner_keys WHERE wrapped IS NOT NULL LIMIT 1"
RECORD_KEY_ID = """
WITH made AS (
    INSERT INTO privacy_key_id (key_id) VALUES ($1) ON CONFLICT DO NOTHING RETURNING key_id
)
SELECT key_id FROM made UNION ALL SELECT key_id FROM privacy_key_id
"""
SELECT_ANY_LEARNER_KEY = "SELECT EXISTS (SELECT 1 FROM learner_keys)"

Pool = asyncpg.Pool | asyncpg.Connection

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
_SHARE_STEP = 1 / 16


class _CachedKeys(dict):
    """Identifier -> cached live key; a KeyError for one not cached."""

    def __init__(self, owner: "LearnerKeys", tenant: str) -> None:
        super().__init__()
        self._owner = owner
        self._tenant = tenant

    def __missing__(self, ident: str) -> seal.SealKey:
        key = self._owner._current.get(_id(self._tenant, self._owner.pseudonym(self._tenant, ident)))
        if key is None:
            raise KeyError(ident)
        self[ident] = key
        return key


_NO_FORMS: dict[bytes, seal.KnownForm] = {}


def _drop_oldest_half(cache: dict[Any, Any]) -> None:
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


def _cipher_id(tenant: str, pseudonym: str, generation: int | str = "") -> str:
    """:attr:`LearnerKeys._ciphers`' key of one generation of an identity's
    key (with no generation, the prefix of all its generations' keys)."""
    return f"{_id(tenant, pseudonym)}\x00{generation}"


def _not_cached(ident: str) -> seal.SealKey:
    raise KeyError(ident)


def _opened_id(tenant: str, own: bytes) -> bytes:
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
    forms: dict[bytes, seal.KnownForm] = {}
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


class LearnerKeys:
    """Seals and opens Statements of any tenant with the keys of the
    identities they name."""

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
        self._reference_form = seal.SHORT
        # v3 ciphertexts read, by reference (immutable: content-addressed).
        self._ciphertexts = StoredCiphertexts(pool, capacity=capacity)
        self._master = master
        self._capacity = max(capacity, 1)
        # Nothing per identity for the garbage collector to walk: the live key
        # by identity (the least recently stored first out), ciphers by
        # generation (None once erased), sealed forms as their text.  Every
        # key and value here is an object the collector does not track
        # (strings, tuples of them, untracked structs), and the dicts are
        # plain dicts, which it stops tracking once it has seen that: a full
        # collection then skips them whole.  An OrderedDict, or one tracked
        # object per identity (a DataKey was one), made every full
        # collection visit each cached identity: 9 ms for 50,000 learners,
        # some 15% of a sealing worker's CPU at batch 100
        # (bench/seal_gc_heap.py; docs/privacy.md "The collector and the
        # learner caches").
        self._current: dict[str, seal.SealKey] = {}  # by _id(tenant, pseudonym)
        self._ciphers: dict[str, Any] = {}  # by _id(tenant, pseudonym) NUL generation
        self._pseudonyms: dict[str, str] = {}  # by _id(tenant, identifier)
        # tenant -> an Agent's sorted JSON -> its sealed form (objectType, pseudonym, generation, text)
        self._sealed: dict[str, dict[bytes, seal.KnownForm]] = {}
        self._sealed_count = 0  # of every tenant's: the capacity bounds them together
        # tenant NUL a sealed form's sorted JSON (_opened_id) -> its refs and opened JSON: open_payloads'
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
        self._next: dict[str, tuple[set[str], asyncio.Future[dict[str, seal.SealKey]]]] = {}
        self._loading: dict[str, tuple[set[str], asyncio.Future[dict[str, seal.SealKey]], int]] = {}
        self._loaders: dict[str, asyncio.Task[None]] = {}
        # Keys made for identities not cached and not known to be committed
        # yet ((tenant, pseudonym) -> wrapped, key): every request sealing
        # such an identity meanwhile uses the same one, so that requests of
        # one process naming a new learner agree (lrs.store.group_keys).
        self._made: dict[tuple[str, str], tuple[bytes, seal.SealKey]] = {}
        # Of the identities not cached lately, the share that had a key already (READ_FIRST_ABOVE).
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
                _drop_oldest_half(self._pseudonyms)
            self._pseudonyms[cache_key] = found
        return found

    def pseudonym_key(self, tenant: str, ident: str) -> str:
        """The IFI key filters and projections know this identity by."""
        return f"account:{seal.PSEUDONYM_HOME}|{self.pseudonym(tenant, ident)}"

    def pseudonymous(self, tenant: str, agent: dict[str, Any]) -> dict[str, Any]:
        """``agent`` as filters see it once sealed (:func:`lrs.privacy.seal.pseudonymous`)."""
        return seal.pseudonymous(agent, lambda ident: self.pseudonym(tenant, ident))

    # -- cache --------------------------------------------------------------

    def cached(self, tenant: str, pseudonym: str) -> seal.SealKey | None:
        """The live key this process has cached for the identity, if any."""
        return self._current.get(_id(tenant, pseudonym))

    def cached_generations(self, tenant: str, pseudonym: str) -> list[int]:
        """The generations of the identity's keys whose ciphers are cached."""
        prefix = _cipher_id(tenant, pseudonym)
        return [int(k[len(prefix):]) for k in self._ciphers if k.startswith(prefix)]

    def forget(self, tenant: str, pseudonym: str) -> None:
        """Drop one identity's keys (it was erased somewhere)."""
        self._version += 1
        self._current.pop(_id(tenant, pseudonym), None)
        self._made.pop((tenant, pseudonym), None)
        self._unconfirmed.forget(tenant, pseudonym)
        self._heard.pop(_id(tenant, pseudonym), None)
        prefix = _cipher_id(tenant, pseudonym)
        self._ciphers = {k: v for k, v in self._ciphers.items() if not k.startswith(prefix)}
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

    def not_listening(self) -> None:
        """The listening connection is lost (or not open yet): the cache is
        not trusted until the next one listens (then :meth:`forget_all` and
        ``trust_cache``), and the keys that one hears are stamped from now."""
        self.trust_cache = False
        self.forget_all()
        self._listening_since = time.monotonic()

    def listener_alive(self, sent: float) -> None:
        """The listening connection answered a probe sent at ``sent``: its
        session, which was listening before every key it delivered was
        committed, was alive after those delivered before ``sent`` were, so
        no crash came between their commits and ``sent``: that is their
        stamp now (a writer's session opened before it proves the rest),
        not the listening connection's opening, which the writer's sessions
        (opened later) would never prove."""
        while self._heard:
            ident, (heard_at, generation) = next(iter(self._heard.items()))
            if heard_at >= sent:
                break
            del self._heard[ident]
            tenant, _, pseudonym = ident.partition("\x00")
            self._unconfirmed.restamp(tenant, pseudonym, generation, sent)

    def heard(self, payload: str) -> None:
        """A change notification: an erasure, ``'<tenant> <pseudonym> <epoch>'``,
        or a key a group commit made, ``'<tenant> <pseudonym> <generation>:<wrapped, hex>:<epoch>'``
        (:mod:`lrs.store.group_keys`)."""
        rest, _, epoch = payload.rpartition(" ")
        tenant, _, pseudonym = rest.rpartition(" ")
        if ":" in epoch:
            self._heard_made(tenant, pseudonym, epoch)
            return
        self.forget(tenant, pseudonym)
        # Notifications come in commit order, and erasures commit one at a time.
        self.epoch = max(self.epoch, int(epoch))

    def _heard_made(self, tenant: str, pseudonym: str, key: str) -> None:
        """A key committed by a group commit, live then: cached, so that this
        process seals under it.  Heard in commit order with the erasures, so
        an erasure of it after comes after (and a request sealed under it is
        checked against the key epoch as any) -- unless the cache already
        caught up with a later key epoch (:meth:`catch_up`) than the one the
        key was made at: an erasure counted then may have destroyed it, and
        a request sealed at that epoch is not checked again.  Not cached then."""
        parts = key.split(":")
        if len(parts) != 3:  # without the epoch (a process of the build before): not known safe to cache
            return
        generation, wrapped, made_at = int(parts[0]), bytes.fromhex(parts[1]), int(parts[2])
        if made_at < self.epoch:
            made = self._made.get((tenant, pseudonym))
            if made is not None and made[0] == wrapped:
                del self._made[(tenant, pseudonym)]  # committed: no longer this process's to propose
            return
        cached = self._current.get(_id(tenant, pseudonym))
        if cached is not None and cached.generation == generation:
            return
        made = self._made.get((tenant, pseudonym))
        # Announced by a key statement, which commits without waiting for its
        # flush, or by a group: not known to be on disk -- unless it is the
        # key made here, which only a group commits (synchronously).
        stamp: float | None = self._listening_since
        if made is not None and made[0] == wrapped:
            cipher, stamp = made[1].cipher, None
        else:
            cipher = self._cipher(wrapped, tenant, pseudonym, generation)
        self._made.pop((tenant, pseudonym), None)
        self._remember(tenant, pseudonym, generation, cipher, self._version, wrapped, stamp)
        if stamp is not None:
            ident = _id(tenant, pseudonym)
            self._heard.pop(ident, None)
            self._heard[ident] = (time.monotonic(), generation)

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
            # otherwise (READ_FIRST_ABOVE).  From 0, a restart made a key for
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
        return seal.new_data_key_cipher(self._master.unwrap(wrapped, tenant, pseudonym, generation))

    # -- keys ---------------------------------------------------------------

    async def keys_for_writing(self, tenant: str, idents: Iterable[str]) -> dict[str, seal.SealKey]:
        """The live key of each identity, made when it has none."""
        return (await self._keys_noted(tenant, idents))[0]

    async def _keys_noted(
        self, tenant: str, idents: Iterable[str]
    ) -> tuple[dict[str, seal.SealKey], dict[str, tuple[int, bytes]], float]:
        """:meth:`keys_for_writing`, with those of the keys not known to be
        on disk ((generation, wrapped) by pseudonym) and their earliest
        stamp, as :meth:`UnconfirmedKeys.of` answers: taken from the notes
        before any wait, and from the key statement's answer for the keys
        it read or made -- while a request waits for that answer, their
        notes may be dropped to make room or all forgotten (the listening
        connection lost, as when PostgreSQL crashes)."""
        found: dict[str, seal.SealKey] = {}
        missing: dict[str, str] = {}  # pseudonym -> identifier
        for ident in idents:
            pseudonym = self.pseudonym(tenant, ident)
            key = self._current.get(_id(tenant, pseudonym)) if self.trust_cache else None
            if key is not None:
                found[ident] = key
            else:
                missing[pseudonym] = ident
        unconfirmed, since = self._unconfirmed.of(tenant, [(key.pseudonym, key.generation) for key in found.values()])
        if missing:
            keys, loaded, loaded_since = await self._load(tenant, list(missing))
            for key in keys:
                found[missing[key.pseudonym]] = key
            unconfirmed.update(loaded)
            since = min(since, loaded_since)
        return found, unconfirmed, since

    async def _load(
        self, tenant: str, pseudonyms: list[str]
    ) -> tuple[list[seal.SealKey], dict[str, tuple[int, bytes]], float]:
        """:meth:`_load_or_create` shared by the requests that wait at the
        same moment: one statement for all of them, as group commit does.
        With the keys: those of them not known to be on disk (all), and their stamp."""
        futures = []
        rest = pseudonyms
        loading = self._loading.get(tenant)
        # Only a statement sent since the cache last forgot anything: one sent
        # before may answer with a key erased since, and a request that began
        # after the erasure was heard is sealed at the new key epoch, which
        # the writer does not check again.
        if loading is not None and loading[2] == self._version:
            rest = [p for p in pseudonyms if p not in loading[0]]
            if len(rest) < len(pseudonyms):
                futures.append(loading[1])
        if rest:
            waiting = self._next.get(tenant)
            if waiting is None:
                waiting = self._next[tenant] = (set(), asyncio.get_running_loop().create_future())
            waiting[0].update(rest)
            futures.append(waiting[1])
            if tenant not in self._loaders:
                self._loaders[tenant] = asyncio.create_task(self._load_waiting(tenant))
        # A caller that goes away does not cancel what others wait for.
        await asyncio.wait(futures)
        keys, noted, stamp = futures[0].result()
        if len(futures) == 2:
            more, more_noted, more_stamp = futures[1].result()
            keys, noted, stamp = {**keys, **more}, {**noted, **more_noted}, min(stamp, more_stamp)
        try:
            return [keys[p] for p in pseudonyms], {p: noted[p] for p in pseudonyms}, stamp
        except KeyError as exc:
            raise LookupError(f"no key was read or made for {exc}") from None

    async def _load_waiting(self, tenant: str) -> None:
        try:
            if self._wait:
                await asyncio.sleep(self._wait)
            while tenant in self._next:
                batch = self._next.pop(tenant)
                self._loading[tenant] = (*batch, self._version)
                try:
                    keys, noted, stamp = await self._load_or_create(tenant, list(batch[0]))
                except BaseException as exc:
                    batch[1].set_exception(exc)
                    batch[1].exception()  # retrieved: a waiter that went away leaves no warning
                    if isinstance(exc, asyncio.CancelledError):
                        raise
                else:
                    batch[1].set_result(({key.pseudonym: key for key in keys}, noted, stamp))
                finally:
                    del self._loading[tenant]
        finally:
            del self._loaders[tenant]
            waiting = self._next.pop(tenant, None)  # left only when cancelled while gathering
            if waiting is not None:
                waiting[1].cancel()

    async def _load_or_create(
        self, tenant: str, pseudonyms: list[str]
    ) -> tuple[list[seal.SealKey], dict[str, tuple[int, bytes]], float]:
        """The live keys of ``pseudonyms``, made for those without one; with
        each one's (generation, wrapped) and the stamp they are noted with
        (none is known to be on disk: :mod:`lrs.store.unconfirmed_keys`)."""
        # One order for every process: two that make the same learners' keys
        # at once insert the rows in the same order, so neither waits on a
        # row the other inserted after one it waits for (no deadlock).
        pseudonyms = sorted(pseudonyms)
        version = self._version
        data_keys = [secrets.token_bytes(32) for _ in pseudonyms]
        wrapped = [self._master.wrap(k, tenant, p, 1) for k, p in zip(data_keys, pseudonyms)]
        mine = {p: (w, k) for p, w, k in zip(pseudonyms, wrapped, data_keys)}
        keys: dict[str, seal.SealKey] = {}
        noted: dict[str, tuple[int, bytes]] = {}
        made = 0
        stamp = time.monotonic()  # before: the keys it makes or reads are committed after
        for row in await self._key_pool.fetch(LOAD_OR_CREATE, tenant, pseudonyms, wrapped):
            pseudonym, generation, stored = row["pseudonym"], row["generation"], row["wrapped"]
            own = mine[pseudonym]
            if generation == 1 and stored == own[0]:  # made now: no need to unwrap
                cipher = seal.new_data_key_cipher(own[1])
                made += 1
            else:
                cipher = self._cipher(stored, tenant, pseudonym, generation)
            keys[pseudonym] = self._remember(tenant, pseudonym, generation, cipher, version, stored, stamp)
            noted[pseudonym] = (generation, stored)
        self._learned(len(pseudonyms) - made, made)
        absent = [p for p in pseudonyms if p not in keys]
        if absent:  # erased before, or made by another process meanwhile
            for key in await self._load_or_create_after_erasure(tenant, absent, version, noted):
                keys[key.pseudonym] = key
        return list(keys.values()), noted, stamp

    async def _load_or_create_after_erasure(
        self, tenant: str, pseudonyms: list[str], version: int, noted: dict[str, tuple[int, bytes]]
    ) -> list[seal.SealKey]:
        stamp = time.monotonic()
        rows = await self._key_pool.fetch(SELECT_CURRENT, tenant, pseudonyms)
        keys: list[seal.SealKey] = []
        known = {}
        for row in rows:
            known[row["pseudonym"]] = row["generation"]
            if row["wrapped"] is not None:
                cipher = self._cipher(row["wrapped"], tenant, row["pseudonym"], row["generation"])
                keys.append(self._remember(tenant, row["pseudonym"], row["generation"], cipher, version,
                                           row["wrapped"], stamp))
                noted[row["pseudonym"]] = (row["generation"], row["wrapped"])
        absent = [p for p in pseudonyms if p not in known or all(k.pseudonym != p for k in keys)]
        if absent:
            generations = [known.get(p, 0) + 1 for p in absent]
            wrapped = [
                self._master.wrap(secrets.token_bytes(32), tenant, p, g) for p, g in zip(absent, generations)
            ]
            await self._key_pool.fetch(INSERT_KEYS, tenant, absent, generations, wrapped)
            # Ours, or the one a concurrent writer made first.
            for row in await self._key_pool.fetch(SELECT_LIVE, tenant, absent):
                cipher = self._cipher(row["wrapped"], tenant, row["pseudonym"], row["generation"])
                keys.append(self._remember(tenant, row["pseudonym"], row["generation"], cipher, version,
                                           row["wrapped"], stamp))
                noted[row["pseudonym"]] = (row["generation"], row["wrapped"])
        return keys

    def _remember(self, tenant: str, pseudonym: str, generation: int, cipher: Any, version: int,
                  wrapped: bytes | None = None, stamp: float | None = None) -> seal.SealKey:
        """The key; cached unless the cache was emptied since ``version``
        (it may have been read before an erasure the cache heard of).  With
        a ``stamp``, not known to be on disk: noted, cached or not, so that
        the requests sealed under it carry it (:mod:`lrs.store.unconfirmed_keys`)."""
        key = seal.SealKey(pseudonym, generation, cipher)
        if stamp is not None and wrapped is not None:
            for dropped in self._unconfirmed.note(tenant, pseudonym, generation, wrapped, stamp):
                self._current.pop(dropped, None)  # not sealed under again without being noted again
        if version == self._version:
            cache_key = _id(tenant, pseudonym)
            self._current.pop(cache_key, None)  # to the end: the most recently stored
            if len(self._current) >= self._capacity:
                _drop_oldest(self._current, max(len(self._current) // 16, 1))
            self._current[cache_key] = key
            self._keep_cipher(_cipher_id(tenant, pseudonym, generation), cipher)
        return key

    def _keep_cipher(self, cipher_id: str, cipher: Any) -> None:
        """Caches one generation's cipher (None: erased), half the oldest out when full."""
        if len(self._ciphers) >= 2 * self._capacity:
            _drop_oldest_half(self._ciphers)
        self._ciphers[cipher_id] = cipher

    async def ciphers_for_reading(self, tenant: str, refs: Iterable[tuple[str, int]]) -> dict[tuple[str, int], Any]:
        """(pseudonym, generation) -> cipher, or None for an erased key.
        Cached ciphers are used only after the database's key epoch shows
        no erasure the cache has not heard of."""
        found: dict[tuple[str, int], Any] = {}
        missing: list[tuple[str, int]] = []
        for pseudonym, generation in refs:
            cache_key = _cipher_id(tenant, pseudonym, generation)
            if self.trust_cache and cache_key in self._ciphers:
                found[(pseudonym, generation)] = self._ciphers[cache_key]
            else:
                missing.append((pseudonym, generation))
        if found:
            epoch = self.epoch
            latest = await self._pool.fetchval(SELECT_KEY_EPOCH)
            if latest != epoch:
                self.catch_up(latest)
                missing += list(found)
                found = {}
        if missing:
            version = self._version
            rows = await self._pool.fetch(
                SELECT_GENERATIONS, tenant, [p for p, _ in missing], [g for _, g in missing]
            )
            for row in rows:
                pseudonym, generation, wrapped = row["pseudonym"], row["generation"], row["wrapped"]
                cipher = None if wrapped is None else self._cipher(wrapped, tenant, pseudonym, generation)
                if version == self._version:
                    self._keep_cipher(_cipher_id(tenant, pseudonym, generation), cipher)
                found[(pseudonym, generation)] = cipher
        # One cipher object per identity for the whole read (a cached key
        # keeps only its bytes: seal.DataKey).
        return {ref: None if c is None else c.cipher() if isinstance(c, seal.DataKey) else c
                for ref, c in found.items()}

    # -- statements ---------------------------------------------------------

    async def seal_statements(
        self, tenant: str, statements: list[dict[str, Any]], authority: dict[str, Any], *, make_keys: bool = False
    ) -> Sealed:
        """The Statements and the authority with every identity sealed: one
        walk (:class:`lrs.privacy.seal.StatementSealer`), the keys not cached
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
        sealer = seal.StatementSealer(tenant, forms, key_of, references=self._references,
                                        reference_form=self._reference_form)
        sealed_authority = sealer.agent(authority)
        sealed = [seal.seal_statement(s, sealer.agent) for s in statements]
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

    def _key_made(self, tenant: str, ident: str, new_keys: dict[str, bytes]) -> seal.SealKey:
        """The key made here for an identity not cached (the one made before
        while it is not known to be committed); its wrapped form in ``new_keys``."""
        pseudonym = self.pseudonym(tenant, ident)
        made = self._made.get((tenant, pseudonym))
        if made is None:
            data_key = secrets.token_bytes(32)
            made = (self._master.wrap(data_key, tenant, pseudonym, 1),
                    seal.SealKey(pseudonym, 1, seal.new_data_key_cipher(data_key)))
            if len(self._made) >= self._capacity:
                _drop_oldest_half(self._made)
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
                    _drop_oldest_half(forms)
                self._sealed_count = sum(len(forms) for forms in self._sealed.values())
            cache = self._sealed.setdefault(sealed.tenant, {})
            before = len(cache)
            cache.update(sealed.forms)
            self._sealed_count += len(cache) - before

    async def _ciphertexts_of(self, references: set[bytes]) -> dict[bytes, bytes]:
        """The stored ciphertexts of v3 sealed identities, by reference."""
        return await self._ciphertexts.read(references)

    async def open_payloads(self, tenant: str, payloads: list[bytes]) -> list[bytes]:
        """Stored Statements with their identities opened (erased ones in
        the erased form); payloads without sealed identities unchanged.

        A sealed form opened before is taken from :attr:`_opened` (by its
        sorted JSON) when every key it is sealed under is live for this read
        (:meth:`ciphers_for_reading`, which checks the key epoch): a page of
        100 Statements of known learners is not decrypted, decoded and
        parsed again (about 1.5 ms of a page's 2.3).  The cache is emptied
        by every erasure heard of, as the sealing forms are (:meth:`forget`)."""
        decoded: dict[int, dict[str, Any]] = {}
        for index, payload in enumerate(payloads):
            if seal.is_sealed_payload(payload):
                decoded[index] = seal.decode(payload)
        if not decoded:
            return payloads
        version = self._version
        before = self._opened
        # each distinct sealed form of the page: (its refs, its v3/v4 rows, its opened JSON or None)
        forms: dict[bytes, tuple[tuple[tuple[str, int], ...], tuple[bytes, ...], bytes | None]] = {}
        own_of: dict[int, bytes] = {}  # id of each Agent of the decoded Statements -> its form's JSON
        refs: set[tuple[str, int]] = set()
        references: set[bytes] = set()
        for statement in decoded.values():
            for agent in seal.stored_agents(statement):
                own = own_of[id(agent)] = seal.encode(agent)
                if own in forms:
                    continue
                kept = before.get(_opened_id(tenant, own))
                known = forms[own] = (kept.refs, (), kept.opened) if kept is not None else self._form_refs(agent)
                refs.update(known[0])
                if known[2] is None:
                    references.update(known[1])
        ciphers = await self.ciphers_for_reading(tenant, refs)
        erased_in_part = [own for own, (agent_refs, _, opened) in forms.items()
                          if opened is not None and not all(ciphers.get(ref) is not None for ref in agent_refs)]
        if erased_in_part:
            # A kept form (a Group) one of whose keys is gone, by an erasure
            # not heard of (the key read from the database): its live
            # members need the ciphertexts its kept entry did not read.
            for own in erased_in_part:
                self._opened.pop(_opened_id(tenant, own), None)
            return await self._open_anew(tenant, payloads, decoded)
        ciphertexts = await self._ciphertexts_of(references) if references else {}
        if self._version != version:
            # An erasure was heard meanwhile: nothing opened before is used.
            return await self._open_anew(tenant, payloads, decoded)
        cache = self._opened

        def open_(agent: dict[str, Any]) -> Any:
            own = own_of[id(agent)]
            agent_refs, rows, opened = forms[own]
            if not all(ciphers.get(ref) is not None for ref in agent_refs):
                return seal.open_agent(agent, ciphers, tenant, ciphertexts)  # erased (in part)
            if opened is None:
                # its JSON as the Statement's encoding writes it (sorted), spliced in as it is
                opened = seal.encode(seal.open_agent(agent, ciphers, tenant, ciphertexts))
                forms[own] = (agent_refs, rows, opened)
                if all(row in ciphertexts for row in rows):  # opened whole: kept for the next reads
                    if len(cache) >= max(self._capacity // 4, 1):
                        _drop_oldest_half(cache)
                    cache[_opened_id(tenant, own)] = OpenedForm(agent_refs, opened)
            return msgspec.Raw(opened)

        opened_payloads = list(payloads)
        for index, statement in decoded.items():
            opened_payloads[index] = seal.encode(seal.open_statement_by(statement, open_))
        return opened_payloads

    @staticmethod
    def _form_refs(
        agent: dict[str, Any],
    ) -> tuple[tuple[tuple[str, int], ...], tuple[bytes, ...], bytes | None]:
        one = {"actor": agent}
        return tuple(seal.sealed_refs(one)), tuple(seal.stored_references(one)), None

    async def _open_anew(self, tenant: str, payloads: list[bytes], decoded: dict[int, dict[str, Any]]) -> list[bytes]:
        """:meth:`open_payloads` without the forms opened before."""
        refs: set[tuple[str, int]] = set()
        references: set[bytes] = set()
        for statement in decoded.values():
            refs |= seal.sealed_refs(statement)
            references |= seal.stored_references(statement)
        ciphers = await self.ciphers_for_reading(tenant, refs)
        ciphertexts = await self._ciphertexts_of(references) if references else {}
        opened = list(payloads)
        for index, statement in decoded.items():
            opened[index] = seal.encode(seal.open_statement(statement, ciphers, tenant, ciphertexts))
        return opened

    async def open_statements(self, tenant: str, statements: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """:meth:`open_payloads` for decoded Statements."""
        refs: set[tuple[str, int]] = set()
        references: set[bytes] = set()
        for statement in statements:
            refs |= seal.sealed_refs(statement)
            references |= seal.stored_references(statement)
        if not refs:
            return statements
        ciphers = await self.ciphers_for_reading(tenant, refs)
        ciphertexts = await self._ciphertexts_of(references) if references else {}
        return [seal.open_statement(s, ciphers, tenant, ciphertexts) for s in statements]
