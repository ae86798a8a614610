"""Learner keys made in a group commit (docs/privacy.md "A first sight in
the group commit").

A process that has not cached an identity's key does not ask PostgreSQL
first: it makes a key (generation 1), seals the request under it and hands
the wrapped key to the Statement writer with the request
(:attr:`lrs.batching.AppendRequest.new_keys`).  The group's transaction
inserts every such key before it takes the log head lock, in one statement
that also reads the live key of each identity that already has one.  A
request is written only when every key it was sealed under is the
identity's live key (made now, or made by an earlier group of the same
process); any other request is refused with the live keys, to be sealed
again under them (:class:`KeyTakenMeanwhile`): one key per identity
whichever process saw it first.  A key row commits only in a group's
transaction: with the first Statement sealed under it, or without one when
the request that made it is rejected in that group (a 409, only
duplicates, refused for an erasure); such a key seals nothing, and an
erasure destroys it like any other.

A request sealed under a key its process read, heard of, or made with a key
statement (committed without waiting for its flush) before the group's
connection began its session carries that key too
(:mod:`lrs.store.unconfirmed_keys`): a crash may have lost it.  A generation
1 key is proposed again like a new one: inserted if its row is gone, the
request written under it as before.  An erasure of a learner without a key
row leaves an erased generation 1 row (:mod:`lrs.store.erasure`), which the
proposal cannot replace: no erased key comes back.  A later generation is
only checked (an erasure that found it gone refused as "already erased";
inserting it after would bring the learner back): a request sealed under
one that is not live is refused, to be sealed again.
"""

from __future__ import annotations

import math
from typing import Mapping

import asyncpg

from lrs.batching import AppendRequest
from lrs.metrics import LEARNER_KEYS_PROPOSED_AGAIN
from lrs.store.learner_key_sql import ANNOUNCE_KEY
from lrs.store.unconfirmed_keys import unconfirmed_before_session
from lrs.xapi.errors import XapiError

__all__ = ["KeyTakenMeanwhile", "PROPOSE_KEYS", "SELECT_LIVE_KEYS", "keys_taken"]

# Each proposed key inserted unless its identity has a key row (of any
# generation: the primary key's conflict), then the live key of each
# identity that had one when the statement began (one primary-key lookup
# per identity, as lrs.store.learner_key_sql's statements).  Keys are
# inserted in (tenant, pseudonym) order in every process, so two groups
# making the same keys wait for each other rather than deadlock.  Each key
# made is announced to every process (lrs.store.learner_key_sql.ANNOUNCE_KEY,
# with the key epoch as of this statement), so that the other workers cache it
# instead of making keys of their own that the group refuses.
# created_at is the statement's time, not now(): the group's transaction may
# have been begun up to a second before by the last group's COMMIT
# (lrs.store.writer, begun_hold_s), and now() is its BEGIN's time.
PROPOSE_KEYS = """
WITH made AS (
    INSERT INTO learner_keys (tenant, pseudonym, generation, wrapped, created_at)
    SELECT u.t, u.p, 1, u.w, statement_timestamp() FROM unnest($1::text[], $2::text[], $3::bytea[]) AS u(t, p, w)
    ON CONFLICT DO NOTHING
    RETURNING tenant, pseudonym, generation, wrapped, %s AS announced
)
SELECT tenant, pseudonym, generation, wrapped FROM made
UNION ALL
SELECT u.t, u.p, k.generation, k.wrapped FROM unnest($1::text[], $2::text[]) AS u(t, p)
CROSS JOIN LATERAL (
    SELECT generation, wrapped FROM learner_keys
    WHERE tenant = u.t AND pseudonym = u.p AND wrapped IS NOT NULL LIMIT 1
) AS k
""" % ANNOUNCE_KEY.format(tenant="tenant")
# The live keys of identities whose key another transaction committed while
# PROPOSE_KEYS waited for it (the statement's snapshot was taken before).
SELECT_LIVE_KEYS = """
SELECT u.t AS tenant, u.p AS pseudonym, k.generation, k.wrapped
FROM unnest($1::text[], $2::text[]) AS u(t, p)
CROSS JOIN LATERAL (
    SELECT generation, wrapped FROM learner_keys
    WHERE tenant = u.t AND pseudonym = u.p AND wrapped IS NOT NULL LIMIT 1
) AS k
"""


class KeyTakenMeanwhile(XapiError):
    """The request was sealed under a key its process made for an identity
    that has another live key (another process's, or one made before this
    process cached it), or none (erased): nothing of it was stored.
    ``keys``: the live key (generation, wrapped) of each identity it made a
    key for that has one, to seal it again with; ``checked``: every identity
    whose key was compared (those it made, and those proposed again)."""

    default_status = 503

    def __init__(self, keys: dict[str, tuple[int, bytes]], checked: frozenset[str] = frozenset()) -> None:
        super().__init__("a learner named in the request was given a key meanwhile; nothing was stored, send it again")
        self.keys = keys
        self.checked = checked


async def keys_taken(
    conn: asyncpg.Connection, requests: list[AppendRequest], session_since: float = -math.inf
) -> dict[int, KeyTakenMeanwhile]:
    """In the group's transaction: insert the keys the requests were sealed
    under (made for them, or not known to be on disk and seen before
    ``session_since``, when ``conn``'s session began); the requests (by
    index) sealed under a key that is not the live one."""
    wanted = [_sealed_under(request, session_since) for request in requests]
    again = sum(len(request.unconfirmed_keys) for request in requests
                if unconfirmed_before_session(request, session_since))
    if again:
        LEARNER_KEYS_PROPOSED_AGAIN.inc(again)
    proposed: dict[tuple[str, str], bytes] = {}
    checked: set[tuple[str, str]] = set()
    for request, keys in zip(requests, wanted):
        for pseudonym, (generation, wrapped) in keys.items():
            if generation == 1:
                proposed.setdefault((request.tenant, pseudonym), wrapped)
            else:
                checked.add((request.tenant, pseudonym))
    if not proposed and not checked:
        return {}
    live: dict[tuple[str, str], tuple[int, bytes]] = {}
    if proposed:
        order = sorted(proposed)
        tenants, pseudonyms = [t for t, _ in order], [p for _, p in order]
        for row in await conn.fetch(PROPOSE_KEYS, tenants, pseudonyms, [proposed[k] for k in order]):
            live[(row["tenant"], row["pseudonym"])] = (row["generation"], row["wrapped"])
    absent = [k for k in sorted(proposed.keys() | checked) if k not in live]
    if absent:
        for row in await conn.fetch(SELECT_LIVE_KEYS, [t for t, _ in absent], [p for _, p in absent]):
            live[(row["tenant"], row["pseudonym"])] = (row["generation"], row["wrapped"])
    refused: dict[int, KeyTakenMeanwhile] = {}
    for index, (request, keys) in enumerate(zip(requests, wanted)):
        mine = {p: live.get((request.tenant, p)) for p in keys}
        if any(key != sealed for sealed, key in zip(keys.values(), mine.values())):
            refused[index] = KeyTakenMeanwhile({p: key for p, key in mine.items() if key is not None}, frozenset(keys))
    return refused


def _sealed_under(request: AppendRequest, session_since: float) -> Mapping[str, tuple[int, bytes]]:
    """The keys of ``request`` the group inserts or checks: (generation, wrapped) by pseudonym."""
    keys: Mapping[str, tuple[int, bytes]] = {p: (1, wrapped) for p, wrapped in request.new_keys.items()}
    if unconfirmed_before_session(request, session_since):
        keys = {**request.unconfirmed_keys, **keys}
    return keys
