-- A read model whose every byte earns its place (issue 19, disk per statement).
--
-- statements.filter_keys kept the text of every agent and activity key of a
-- statement (372 bytes a statement on average) only so that a candidate found
-- through statement_keys (64-bit hashes of those keys) could be checked
-- exactly, and verb_id the verb IRI (41 bytes) for the same check on the
-- verb's hash index.  The statement's own JSON, which every page reads from
-- events anyway, now decides instead (lrs/store/reader.py, lrs/store/keys.py):
-- a candidate whose hash matched but whose JSON does not hold the key is
-- dropped and the page reads on, so a hash collision costs reading, never a
-- wrong answer.  What stays in the row is what SQL must decide with:
--
--   verb_key       statement_key(tenant, 'V:' || verb IRI), the verb filter's walk
--   authority_key  statement_key(tenant, 'U:' || authority IFI key), the
--                  statements/read/mine scope (checked on the JSON as well)
--
-- The columns are ordered widest-aligned first, so the row has no padding.
--
-- events had UNIQUE (tenant, statement_id) as well as statements' primary
-- key on the same pair, both written by the same INSERT (lrs/store/writer.py
-- INSERT_GROUP writes a statement's event and its read-model row in one SQL
-- statement, so a duplicate id fails both or neither).  The read model's key
-- stays: it is the one every lookup by id uses (the writer's duplicate and
-- voiding checks, GET by id, StatementRef chains), and its rows are never
-- deleted (events are append-only, an erasure keeps the rows), so a second
-- event for one (tenant, statement id) still cannot be written.  The events'
-- copy only cost each insert an index entry (about 45 bytes a statement).

-- Appenders of the old code may still run (a rolling upgrade, or `lrs migrate`
-- with the service up): the copy below must see everything they commit, or
-- rows committed between it and the DROP would be lost with the old table
-- (and with them the only index that refuses a second event for an id).
-- Every appender takes the log head first (lrs/store/writer.py), so holding
-- it stops ingest for the migration, waiting for the group in flight, and
-- never deadlocks with a writer that holds events and waits for statements.
-- Writers of the new code waiting here get 503 after their lock_timeout;
-- those of the old code fail once it commits (docs/operations: upgrading).
SELECT position FROM log_head WHERE singleton FOR UPDATE;

CREATE TABLE statements_lean (
    position      bigint      NOT NULL,
    stored        timestamptz NOT NULL,
    verb_key      bigint      NOT NULL,
    authority_key bigint,
    statement_id  uuid        NOT NULL,
    registration  uuid,
    voids         uuid,                   -- target, when this is a voiding statement
    statement_ref uuid,                   -- target of a StatementRef object
    voided        boolean     NOT NULL DEFAULT false,
    tenant        text        NOT NULL
) WITH (autovacuum_analyze_scale_factor = 0.02, autovacuum_analyze_threshold = 10000,
        autovacuum_vacuum_insert_scale_factor = 0.05, autovacuum_vacuum_insert_threshold = 10000);

-- A store built by the old schema: each row once, in position order.  The
-- authority key is the 'U:' entry of filter_keys (0003 gave every row one).
INSERT INTO statements_lean (position, stored, verb_key, authority_key, statement_id, registration, voids,
                             statement_ref, voided, tenant)
SELECT s.position, s.stored, statement_key(s.tenant, 'V:' || s.verb_id),
       statement_key(s.tenant, (SELECT k FROM unnest(s.filter_keys) AS k WHERE left(k, 2) = 'U:' LIMIT 1)),
       s.statement_id, s.registration, s.voids, s.statement_ref, s.voided, s.tenant
FROM statements s
ORDER BY s.position;

DROP TABLE statements;
ALTER TABLE statements_lean RENAME TO statements;

ALTER TABLE statements ADD CONSTRAINT statements_pkey PRIMARY KEY (tenant, statement_id);
-- Unfiltered pages and since/until (stored is monotone with position).
CREATE UNIQUE INDEX statements_tenant_position ON statements (tenant, position);
CREATE INDEX statements_tenant_registration ON statements (tenant, registration, position)
    WHERE registration IS NOT NULL;
-- Voiding statements are rare: find the voiders of incoming ids cheaply.
CREATE INDEX statements_tenant_voids ON statements (tenant, voids)
    WHERE voids IS NOT NULL;
-- Statements that target other statements, for the StatementRef filter rule.
CREATE INDEX statements_tenant_statement_ref ON statements (tenant, statement_ref)
    WHERE statement_ref IS NOT NULL;
CREATE INDEX statements_tenant_ref_position ON statements (tenant, position)
    WHERE statement_ref IS NOT NULL;
-- The verb filter's walk (the key includes the tenant).
CREATE INDEX statements_verb_key_position ON statements (verb_key, position);

ALTER TABLE events DROP CONSTRAINT events_tenant_statement_id_key;

ANALYZE statements;
