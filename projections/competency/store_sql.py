"""The SQL of the competency projection's live apply (projections/competency/store.py)."""

from __future__ import annotations

# Every lookup and delete by key below goes key by key through the primary
# key: a LATERAL subquery with LIMIT runs once per key and cannot be turned
# into a scan, and a delete takes the ctids so found (a TID scan each).  With
# "(key) IN (SELECT unnest ...)", the plan PostgreSQL caches for a connection
# was made while the tables were small: a hash join over the whole table,
# whose cost then grew with every learner and statement projected (from an
# empty projection, a voiding's lookup went from 0.9 to 10 ms a batch within
# 170 batches).  tests/integration/test_projection_plans.py checks the plans.
SELECT_STATES = """
SELECT w.tenant, w.learner, s.state
FROM unnest($1::text[], $2::text[]) AS w(tenant, learner)
CROSS JOIN LATERAL (
    SELECT state FROM competency_learners WHERE tenant = w.tenant AND learner = w.learner LIMIT 1
) AS s
"""
UPSERT_STATES = """
INSERT INTO competency_learners (tenant, learner, state, position)
SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[], $4::bigint[])
ON CONFLICT (tenant, learner) DO UPDATE SET state = EXCLUDED.state, position = EXCLUDED.position
"""
# A learner's rows are found through the primary key's (tenant, learner)
# prefix, the competency compared after (OFFSET 0 keeps it out of the lookup):
# with the competency in the lookup, PostgreSQL could pick the index on
# (tenant, competency, status) and filter every learner of that competency
# (it did, on tables whose statistics were stale: 0.9 ms a key at 20,000
# learners, growing with them; 0.02 ms this way).
DELETE_STATE_ROWS = """
DELETE FROM competency_states WHERE ctid IN (
    SELECT s.ctid FROM unnest($1::text[], $2::text[], $3::text[]) AS w(tenant, learner, competency)
    CROSS JOIN LATERAL (
        SELECT ctid, competency FROM competency_states WHERE tenant = w.tenant AND learner = w.learner OFFSET 0
    ) AS s
    WHERE s.competency = w.competency
)
"""
DELETE_CERTIFICATIONS = """
DELETE FROM competency_certifications WHERE ctid IN (
    SELECT c.ctid FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS w(tenant, learner, program, version)
    CROSS JOIN LATERAL (
        SELECT ctid FROM competency_certifications
        WHERE tenant = w.tenant AND learner = w.learner AND program = w.program AND program_version = w.version
        LIMIT 1
    ) AS c
)
"""
INSERT_STATEMENT_LEARNERS = """
INSERT INTO competency_statement_learners (tenant, statement_id, learner, actor)
SELECT * FROM unnest($1::text[], $2::uuid[], $3::text[], $4::text[]) ON CONFLICT DO NOTHING
"""
RELINK_STATEMENTS = """
UPDATE competency_statement_learners SET learner = $2, actor = coalesce(actor, learner)
WHERE tenant = $1 AND learner = ANY($3::text[])
"""
SELECT_LINKED_STATEMENTS = """
SELECT statement_id, actor FROM competency_statement_learners
WHERE tenant = $1 AND learner = $2 AND actor = ANY($3::text[])
"""
UNLINK_STATEMENTS = """
UPDATE competency_statement_learners SET learner = actor, actor = NULL
WHERE tenant = $1 AND learner = $2 AND actor = ANY($3::text[])
"""
DELETE_LEARNER_STATES = """
DELETE FROM competency_learners WHERE (tenant, learner) IN (SELECT * FROM unnest($1::text[], $2::text[]))
"""
SELECT_STATEMENT_LEARNERS = """
SELECT w.tenant, w.statement_id, s.learner
FROM unnest($1::text[], $2::uuid[]) AS w(tenant, statement_id)
CROSS JOIN LATERAL (
    SELECT learner FROM competency_statement_learners
    WHERE tenant = w.tenant AND statement_id = w.statement_id LIMIT 1
) AS s
"""
INSERT_MISMATCHES = """
INSERT INTO competency_mastery_mismatches (tenant, statement_id, activity, platform, learner, timestamp, score,
    mastery_score, statement_mastery, passed)
SELECT * FROM unnest($1::text[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::timestamptz[],
    $7::float8[], $8::float8[], $9::float8[], $10::bool[])
ON CONFLICT DO NOTHING
"""
INSERT_VOIDS = """
INSERT INTO competency_voids (tenant, target_id, voiding_statement_id)
SELECT * FROM unnest($1::text[], $2::uuid[], $3::uuid[]) ON CONFLICT DO NOTHING
"""
SELECT_VOIDS = """
SELECT w.tenant, w.target_id, v.voiding_statement_id
FROM unnest($1::text[], $2::uuid[]) AS w(tenant, target_id)
CROSS JOIN LATERAL (
    SELECT voiding_statement_id FROM competency_voids
    WHERE tenant = w.tenant AND target_id = w.target_id LIMIT 1
) AS v
"""
TRUNCATE_ALL = """
TRUNCATE competency_learners, competency_states, competency_certifications,
    competency_statement_learners, competency_voids, competency_mastery_mismatches, unit_certified
"""
