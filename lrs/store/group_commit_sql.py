"""The SQL of a group commit (:mod:`lrs.store.writer`), each text with why
it is written the way it is."""

from __future__ import annotations

from lrs.store.commit_notifications import LOG_CHANNEL
from lrs.store.sealed_identities import insert_ciphertexts

SELECT_HEAD_FOR_UPDATE = "SELECT position, hash, stored, key_epoch FROM log_head WHERE singleton FOR UPDATE"
SELECT_HEAD = "SELECT position, hash, stored FROM log_head WHERE singleton"
SELECT_HEAD_STORED = "SELECT stored FROM log_head WHERE singleton"
SELECT_HEAD_POSITION = "SELECT position FROM log_head WHERE singleton"
# Two index lookups rather than one "id = ANY OR voids = ANY": with the OR,
# a plan made while the table was small scans every row of the tenant.
# Each wanted id is its own primary-key lookup (a LATERAL subquery with
# LIMIT is run once per id and cannot be turned into a scan): with
# "statement_id = ANY($2)" the planner may find it cheaper to read the whole
# tenant and compare every row with the list, which is what it chose once
# the read model no longer carried the JSON (small rows, cheap to scan) and
# which grows with every statement stored.  Voiding statements are few, and
# their partial index small.  The JSON of a stored statement is its event's
# payload (same position).
SELECT_TOUCHED = """
SELECT s.statement_id, (SELECT e.payload FROM events e WHERE e.position = s.position) AS payload,
       s.voids, s.voided, s.stored, s.position
FROM unnest($2::uuid[]) AS wanted(id)
CROSS JOIN LATERAL (
    SELECT statement_id, voids, voided, stored, position FROM statements
    WHERE tenant = $1 AND statement_id = wanted.id LIMIT 1
) AS s
UNION ALL
SELECT s.statement_id, (SELECT e.payload FROM events e WHERE e.position = s.position) AS payload,
       s.voids, s.voided, s.stored, s.position
FROM statements s WHERE s.tenant = $1 AND s.voids = ANY($3::uuid[]) AND s.voids IS NOT NULL
"""
# The touched statements committed in (after, upto]: the group looks its
# statements up before it takes the head lock, then only this range under it.
# Both bounds: a range a generic plan takes for narrow (the position index),
# and IN (SELECT unnest ...) is hashed once, not searched per row.
SELECT_TOUCHED_BETWEEN = """
SELECT s.statement_id, (SELECT e.payload FROM events e WHERE e.position = s.position) AS payload,
       s.voids, s.voided, s.stored, s.position
FROM statements s
WHERE s.tenant = $1 AND s.position > $3 AND s.position <= $4
  AND (s.statement_id IN (SELECT unnest($2::uuid[])) OR s.voids IN (SELECT unnest($2::uuid[])))
"""
# Small groups: the head lock and, seen from after it was granted, the
# touched statements, in one round trip (schemas/postgres/0099_lock_head_with_touched.sql):
# the first row is the head, the others the statements.
SELECT_HEAD_WITH_TOUCHED = "SELECT * FROM log_head_locked_with_touched($1, $2, $3, $4)"
# The same, and the canonical Activity Definitions the group may merge,
# locked (schemas/postgres/0140_lock_head_with_touched_and_definitions.sql):
# a group of defining senders no longer reads them in a round trip of its
# own under the head lock.  Definition rows have ``activity_id`` set.
SELECT_HEAD_WITH_TOUCHED_AND_DEFINITIONS = (
    "SELECT * FROM log_head_locked_with_touched_and_definitions($1, $2, $3, $4, $5, $6)"
)
# Of the requests' (tenant, pseudonym, generation) keys, the destroyed ones:
# each looked up on its own by the primary key (a LATERAL subquery with
# LIMIT), not an anti-join a planner may run over every key
# (lrs.store.learner_keys).
SELECT_ERASED_REFS = """
SELECT u.t AS tenant, u.p AS pseudonym, u.g AS generation
FROM unnest($1::text[], $2::text[], $3::int[]) AS u(t, p, g)
LEFT JOIN LATERAL (
    SELECT wrapped FROM learner_keys k
    WHERE k.tenant = u.t AND k.pseudonym = u.p AND k.generation = u.g LIMIT 1
) AS k ON true
WHERE k.wrapped IS NULL
"""
UPDATE_VOIDED = """
UPDATE statements SET voided = true
WHERE tenant = $1 AND statement_id = ANY($2::uuid[]) AND voids IS NULL
"""
# Whether a Statement stored before this group refers to one of the group's
# (its target came after it): it then takes the new Statement's keys
# (lrs/store/ref_keys.py).  One lookup per new Statement in the small partial
# index of referring Statements (OFFSET 0: never a join over all of them).
REFERRED = """EXISTS (
    SELECT 1 FROM unnest($3::text[], $5::uuid[]) AS u(tenant, id), LATERAL (
        SELECT 1 FROM statements r WHERE r.tenant = coalesce(u.tenant, $3[1]) AND r.statement_ref = u.id
          AND r.statement_ref IS NOT NULL OFFSET 0
    ) AS r
)"""
# The whole write of a group in one statement (one round trip): the events,
# the read-model rows (whose JSON is the event's payload) and the new head.  Filter keys travel as one array literal per row ('{"A:...","O:..."}')
# because unnest cannot take a ragged two-dimensional array; PostgreSQL's array
# input is much cheaper than expanding a JSON array per row.
# What follows from the group's place in the log is not sent per row
# (plan_group lays it out; lrs.store.group_columns checks it): the n-th new event
# (n from 1) has position $1 + n - 1 and stored $6 + (n - 1) microseconds, its
# prev_hash is the hash of the event before it ($8, the old head's hash, for
# the first), and every event is a statement ($4).  asyncpg encodes each
# element of an array parameter on its own (a timestamptz costs most), so four
# arrays fewer are about 1.5 microseconds of the worker's CPU a statement
# (bench/group_insert_encoding.py).  For the same reason the hashes ($9, 32
# bytes each) come in one bytea, cut out by the row's ordinal n.  The tenants
# ($3) and the authority keys ($21) come once when the whole group has one
# (every row then takes element 1; unnest pads a shorter array with NULLs).
# Registration, voided, voids and statement_ref ($12-$15) are NULL when no
# row has one (voided then false).  lrs.store.group_columns lays them out.
# The ids stay uuid[]: cut out of one bytea (encode(substr(...), 'hex')::uuid)
# they cost PostgreSQL more than they spare asyncpg.  Together about 1.3
# microseconds of the worker's CPU a statement fewer, PostgreSQL's the same.
INSERT_GROUP = """
WITH new_events AS (
    INSERT INTO events (position, event_id, tenant, event_type, statement_id,
                        stored, payload, prev_hash, hash)
    SELECT $1::bigint + e.n - 1, e.event_id, coalesce(e.tenant, $3[1]), $4::text, e.statement_id,
           $6::timestamptz + (e.n - 1) * interval '1 microsecond', e.payload,
           CASE WHEN e.n = 1 THEN $8::bytea ELSE substr($9::bytea, 32 * e.n::int - 63, 32) END,
           substr($9::bytea, 32 * e.n::int - 31, 32)
    FROM unnest($2::uuid[], $3::text[], $5::uuid[], $7::bytea[]) WITH ORDINALITY AS e(event_id, tenant, statement_id, payload, n)
), new_statements AS (
    -- the keys' text stays in the statement's JSON; the row holds hashes
    -- (schemas/postgres/0092_lean_statements.sql)
    INSERT INTO statements (tenant, statement_id, position, stored, verb_key,
                            authority_key, registration, voided, voids, statement_ref)
    SELECT coalesce(u.tenant, $3[1]), u.statement_id,
           $1::bigint + u.n - 1, $6::timestamptz + (u.n - 1) * interval '1 microsecond',
           statement_key(coalesce(u.tenant, $3[1]), 'V:' || u.verb_id),
           statement_key(coalesce(u.tenant, $3[1]), CASE WHEN cardinality($21::text[]) > 1 THEN u.authority ELSE $21[1] END),
           u.registration, coalesce(u.voided, false), u.voids, u.statement_ref
    FROM unnest($3::text[], $5::uuid[], $10::text[], $21::text[], $12::uuid[], $13::bool[], $14::uuid[], $15::uuid[])
         WITH ORDINALITY AS u(tenant, statement_id, verb_id, authority, registration, voided, voids, statement_ref, n)
), new_keys AS (
    -- the ordered index of the filter keys (schemas/postgres/0091_statement_keys.sql),
    -- and with the Activity Object's ('O:') its pair with the verb
    -- (schemas/postgres/0141_activity_verb_pair_keys.sql, lrs.ingest.stored_keys.pair_key)
    -- not DISTINCT: a statement's keys are distinct as text, and two of them
    -- sharing a 64-bit hash (a row repeated) is read once by every walk
    -- (lrs.store.reader._select); sorting the group's rows to drop it cost
    -- about 1.7 microseconds of PostgreSQL a statement (docs/scaling.md, branch b100x)
    INSERT INTO statement_keys (key, position)
    SELECT statement_key(coalesce(u.tenant, $3[1]), x.key), $1::bigint + u.n - 1
    FROM unnest($3::text[], $11::text[], $10::text[]) WITH ORDINALITY AS u(tenant, keys, verb_id, n),
         unnest(u.keys::text[]) AS k,
         -- a function scan, not a correlated VALUES list: PostgreSQL
         -- compiles a VALUES list's expressions again for every outer row
         -- (about 1 microsecond of its CPU a statement, bench/group_insert_pg_pieces.py)
         unnest(ARRAY[k, CASE WHEN left(k, 2) = 'O:' THEN 'P:' || substr(k, 3) || chr(31) || u.verb_id END]) AS x(key)
    -- the authority's key ('U:') is not among them, nor an Agent authority's
    -- related agent key ('a:'; lrs.store.group_columns.key_literal)
    WHERE x.key IS NOT NULL
), new_head AS (
    UPDATE log_head SET position = $16, hash = $17, stored = $18 WHERE singleton
), new_ciphertexts AS (
    -- the ciphertexts the group's sealed Statements name, new to their
    -- senders, in reference order (lrs.store.sealed_identities)
    %s
), definitions_checkpoint AS (
    UPDATE activity_definitions_checkpoint SET position = GREATEST(position, $16)
    WHERE singleton AND $19::bool
)
SELECT CASE WHEN $20::bool THEN pg_notify('%s', $16::text) END, %s AS referred
""" % (insert_ciphertexts("$22", "$23"), LOG_CHANNEL, REFERRED)
# $19: the group carries Activity Definitions of a defining sender, so the
# definitions' checkpoint moves to the new head in this statement, before
# write_definitions locks and merges the rows (lrs.store.activities explains
# the order).  $20: other processes append to the log too, so the commit is
# announced (lrs.store.commit_notifications; delivered at COMMIT).  Each was
# a round trip of its own per group.  $21: each statement's 'U:' authority key.
# $22, $23: the references and ciphertexts of sealed identities the group's
# requests carry (AppendRequest.ciphertexts), so a Statement never commits
# without the ciphertext it names: same statement, same transaction.

# The plans of a group's statements.  A connection's prepared statement runs
# on a cached generic plan (after five custom plans, or at once with
# force_generic_plan), kept until a table it reads is analysed again.  Made
# while the store holds a few dozen statements, that plan reads the whole of
# the then tiny statements table where an index lookup is meant (REFERRED in
# INSERT_GROUP above all: one sequential scan of the statements per new
# Statement), and it stays while the table grows: statements is analysed
# again only after 10,000 changed rows (schemas/postgres/0092_lean_statements.sql).
# On a fresh store that cost PostgreSQL about 1,200 microseconds a statement at
# batch 1.  Planning every statement at every execution instead costs a
# custom plan of INSERT_GROUP at every group (bench/writer_statement_plans.py,
# docs/scaling.md "Which plan went wrong").  So a group plans per execution
# only while the log is shorter than GENERIC_PLANS_FROM events (its tables
# are then too small for the planner to prefer an index), and runs on
# generic plans after: made on a store of that size they are index lookups
# (at 1,000 statements two of them still read the statements whole, from
# 2,000 none), and every later one (after an ANALYZE) is made on a larger store
# (tests/integration/test_writer_generic_plans.py checks each at
# GENERIC_PLANS_FROM).  SET LOCAL ends with the transaction, and travels in
# the BEGIN's round trip.
GENERIC_PLANS_FROM = 5_000
# The log also holds events other than statements (document writes above
# all: a player's State API writes often outnumber its statements), so a
# long log may hold a tiny statements table, on which a generic plan reads
# it whole: the writer also counts the statements, up to GENERIC_PLANS_FROM,
# before it takes generic plans (once, and again each time the log grew by
# COUNT_STATEMENTS_EVERY events while they are too few).
COUNT_STATEMENTS_UPTO = "SELECT count(*) FROM (SELECT FROM statements LIMIT $1) AS s"
COUNT_STATEMENTS_EVERY = 1_000
BEGIN_GROUP_CUSTOM_PLANS = "BEGIN; SET LOCAL plan_cache_mode = force_custom_plan"
BEGIN_GROUP_GENERIC_PLANS = "BEGIN; SET LOCAL plan_cache_mode = force_generic_plan"


def begin_group(log_position: int | None) -> str:
    """The BEGIN of a group's transaction, given the log head the writer
    saw last (None: none yet)."""
    if log_position is None or log_position < GENERIC_PLANS_FROM:
        return BEGIN_GROUP_CUSTOM_PLANS
    return BEGIN_GROUP_GENERIC_PLANS
