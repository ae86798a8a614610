"""Learner keys a process seals under that may not be on disk yet
(docs/privacy.md "A key lost in a crash (branch keys-crash)").

A key statement (:data:`lrs.store.learner_key_sql.LOAD_OR_CREATE`) commits
without waiting for its WAL flush: a Statement sealed under a key it made
commits after it, synchronously, and that flush covers the key's commit
record -- on the same server.  Should PostgreSQL crash in between, the key
is lost with its unflushed commit, and a request sealed under it before the
crash and committed after it would store a Statement no key opens.  The
same holds for any key a process read (another process's key statement may
have just committed it, unflushed) or heard announced.

So every such key is noted here with a *stamp*: a ``time.monotonic()`` no
later than the moment the key was seen committed (taken before the statement
that made or read it was sent; for a key heard of, before the listening
connection that heard it was opened).  A group commit on a connection this
process has known since before a request's earliest stamp proves that no
crash came between (a crash ends every session), so its COMMIT's flush
covers the keys; on a connection opened since, the group proposes the keys
again (:func:`lrs.store.group_keys.keys_taken`).  A key is confirmed, and
no longer noted, once a Statement sealed under it was committed
(:meth:`UnconfirmedKeys.confirm`).
"""

from __future__ import annotations

import itertools
import math
import time
import weakref
from typing import TYPE_CHECKING, Iterable, Sequence

import asyncpg

if TYPE_CHECKING:
    from lrs.batching import AppendRequest

__all__ = ["EARLIEST", "UnconfirmedKeys", "identity_key", "session_known_since", "unconfirmed_before_session"]

# The stamp of a key whose commit time is not known (read by a group commit
# that refused the request): proposed again by the next group whatever its connection.
EARLIEST = -math.inf


def identity_key(tenant: str, name: str) -> str:
    """One key of a tenant's identity (by pseudonym or identifier), here and
    in the key cache (lrs.store.learner_key_cache): a string, which the garbage
    collector does not track, where a tuple made anew is tracked until a
    collection sees it, and makes the dict it is put in tracked again."""
    return tenant + "\x00" + name


class UnconfirmedKeys:
    """(tenant, pseudonym) -> (generation, stamp, wrapped key) of the key
    not confirmed, in the order noted (noting again moves a key to the end),
    the oldest half out when full.  Noted whenever the key cache stores a
    key (as a key statement's, heard of, or read by a group); a key dropped
    here is dropped from the cache too (:meth:`note` returns them), so no
    request is sealed under it unnoted.  Most keys are confirmed by their
    first request; those that stay are mostly keys heard of and not used
    yet (some 300 bytes each: a quarter of the cache's capacity, some 19 MB
    at the default 250,000).  :class:`lrs.store.learner_keys.LearnerKeys`
    asks for a request's cached keys before any wait, so a drop while the
    request waits for other keys is not missed.  By identity, not by
    generation: a process seals under one generation of an identity at a
    time (an erasure heard of forgets the identity here and in the cache).
    Keys are strings (as the cache's): a request of 100 new learners looks
    its keys up in some 5 µs."""

    def __init__(self, capacity: int) -> None:
        self._keys: dict[str, tuple[int, float, bytes]] = {}
        self._capacity = max(capacity, 1)

    def __bool__(self) -> bool:
        return bool(self._keys)

    def note(self, tenant: str, pseudonym: str, generation: int, wrapped: bytes, stamp: float) -> Sequence[str]:
        """Notes the key; returns the identities dropped to make room
        (``tenant NUL pseudonym``, as the key cache's keys), usually none."""
        key = identity_key(tenant, pseudonym)
        self._keys.pop(key, None)
        dropped: Sequence[str] = ()
        if len(self._keys) >= self._capacity:
            dropped = list(itertools.islice(self._keys, len(self._keys) // 2 or 1))
            for old in dropped:
                del self._keys[old]
        self._keys[key] = (generation, stamp, wrapped)
        return dropped

    def restamp(self, tenant: str, pseudonym: str, generation: int, stamp: float) -> None:
        """A later ``stamp`` for the key, if it is still noted (in its place)."""
        key = identity_key(tenant, pseudonym)
        noted = self._keys.get(key)
        if noted is not None and noted[0] == generation and noted[1] < stamp:
            self._keys[key] = (generation, stamp, noted[2])

    def of(self, tenant: str, refs: Iterable[tuple[str, int]]) -> tuple[dict[str, tuple[int, bytes]], float]:
        """Of the keys ``refs`` (pseudonym, generation) names, those not
        confirmed: (generation, wrapped) by pseudonym, and the earliest of
        their stamps (``inf`` when none)."""
        found: dict[str, tuple[int, bytes]] = {}
        since = math.inf
        if self._keys:
            keys, prefix = self._keys, identity_key(tenant, "")
            for pseudonym, generation in refs:
                noted = keys.get(prefix + pseudonym)
                if noted is not None and noted[0] == generation:
                    found[pseudonym] = (generation, noted[2])
                    if noted[1] < since:
                        since = noted[1]
        return found, since

    def confirm(self, tenant: str, keys: Iterable[tuple[str, int]]) -> None:
        """A Statement sealed under each of ``keys`` (pseudonym, generation) was committed."""
        prefix = identity_key(tenant, "")
        for pseudonym, generation in keys:
            noted = self._keys.get(prefix + pseudonym)
            if noted is not None and noted[0] == generation:
                del self._keys[prefix + pseudonym]

    def forget(self, tenant: str, pseudonym: str) -> None:
        self._keys.pop(identity_key(tenant, pseudonym), None)

    def clear(self) -> None:
        self._keys.clear()


_sessions: "weakref.WeakKeyDictionary[asyncpg.Connection, float]" = weakref.WeakKeyDictionary()


def session_known_since(conn: asyncpg.Connection) -> float:
    """A ``time.monotonic()`` no earlier than the start of ``conn``'s
    session: when this process first asked about it.  A pooled connection's
    lease (its proxy) is asked about by the session under it, which asyncpg
    replaces by a new connection object when it reconnects.  A lease whose
    session ended (asyncpg hands its connection back to the pool at once)
    has none: ``inf``, every key is proposed again, and that statement fails
    as the storage unavailable."""
    session = conn._con if isinstance(conn, asyncpg.pool.PoolConnectionProxy) else conn
    if session is None:
        return math.inf
    return _sessions.setdefault(session, time.monotonic())


def unconfirmed_before_session(request: AppendRequest, session_since: float) -> bool:
    """Whether ``request`` is sealed under keys not known to be on disk that
    were seen committed no later than the session of the group's connection
    began (``session_since``, :func:`session_known_since`): a crash may have
    come between and lost them, so the group proposes them again
    (:func:`lrs.store.group_keys.keys_taken`).  A stamp equal to the
    session's start counts (neither moment is exact: each is a bound), and a
    lease whose session ended (``inf``) has every such key proposed again."""
    return bool(request.unconfirmed_keys) and request.unconfirmed_since <= session_since
