"""The SQL of the learner keys (:class:`lrs.store.learner_keys.LearnerKeys`):
the key statement that reads or makes the keys of identities a process has
not cached, the reads of keys to open Statements with, the announcement of
every key made, and the master key's check at start.  The erasure's own
statements are :mod:`lrs.store.erasure`'s."""

from __future__ import annotations

__all__ = [
    "ANNOUNCE_KEY", "CHANGES_CHANNEL", "INSERT_KEYS", "LOAD_OR_CREATE", "RECORD_KEY_ID", "SELECT_ANY_LEARNER_KEY",
    "SELECT_CURRENT", "SELECT_GENERATIONS", "SELECT_KEY_EPOCH", "SELECT_LIVE", "SELECT_ONE_LIVE",
]

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
SELECT_KEY_EPOCH = "SELECT key_epoch FROM log_head WHERE singleton"
SELECT_ONE_LIVE = "SELECT tenant, pseudonym, generation, wrapped FROM learner_keys WHERE wrapped IS NOT NULL LIMIT 1"
RECORD_KEY_ID = """
WITH made AS (
    INSERT INTO privacy_key_id (key_id) VALUES ($1) ON CONFLICT DO NOTHING RETURNING key_id
)
SELECT key_id FROM made UNION ALL SELECT key_id FROM privacy_key_id
"""
SELECT_ANY_LEARNER_KEY = "SELECT EXISTS (SELECT 1 FROM learner_keys)"
