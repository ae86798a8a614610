-- The event log (system of record), its head, and the statements read model.
--
-- Positions are assigned by the writer while it holds the single log_head row
-- FOR UPDATE, so they are gapless and in commit order: a reader that has seen
-- position p never later sees a new position below p.  Each event's hash
-- chains to the previous event's hash (lrs/eventlog.py defines the encoding).

CREATE TABLE events (
    position     bigint      PRIMARY KEY,
    event_id     uuid        NOT NULL UNIQUE,
    tenant       text        NOT NULL,
    event_type   text        NOT NULL,
    statement_id uuid,
    stored       timestamptz NOT NULL,
    payload      bytea       NOT NULL,   -- canonical JSON of the stored statement
    prev_hash    bytea       NOT NULL,
    hash         bytea       NOT NULL,
    UNIQUE (tenant, statement_id)
);

-- Append-only: the log is never rewritten.
CREATE FUNCTION events_reject_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'events is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'restrict_violation';
END
$$;

CREATE TRIGGER events_append_only
    BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_reject_change();

CREATE TRIGGER events_no_truncate
    BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_reject_change();

-- One row: the last position, its hash and its stored time.  Writers lock it
-- FOR UPDATE for the length of their transaction.
CREATE TABLE log_head (
    singleton boolean     PRIMARY KEY DEFAULT true CHECK (singleton),
    position  bigint      NOT NULL,
    hash      bytea       NOT NULL,
    stored    timestamptz
);

INSERT INTO log_head (singleton, position, hash, stored)
VALUES (true, 0, '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea, NULL);

-- Read model, written in the same transaction as the events.  "stored" is
-- strictly increasing with "position", so either orders the same way.
CREATE TABLE statements (
    tenant               text        NOT NULL,
    statement_id         uuid        NOT NULL,
    position             bigint      NOT NULL,
    stored               timestamptz NOT NULL,
    body                 bytea       NOT NULL,   -- exact stored JSON (same bytes as events.payload)
    verb_id              text        NOT NULL,
    -- Agent and activity filter keys in one array so that one GIN index
    -- serves all four filters (measured: one index with these entries costs
    -- ingest about what two separate ones do, four cost noticeably more).
    -- 'A:<ifi key>'  agent filter            'a:<ifi key>'  related_agents only
    -- 'O:<activity>' activity filter         'o:<activity>' related_activities only
    filter_keys          text[]      NOT NULL,
    registration         uuid,
    voided               boolean     NOT NULL DEFAULT false,
    voids                uuid,                   -- target, when this is a voiding statement
    statement_ref        uuid,                   -- target of a StatementRef object
    PRIMARY KEY (tenant, statement_id)
);

-- Unfiltered pages and since/until (stored is monotone with position).
CREATE UNIQUE INDEX statements_tenant_position ON statements (tenant, position);
CREATE INDEX statements_tenant_verb ON statements (tenant, verb_id, position);
CREATE INDEX statements_tenant_registration ON statements (tenant, registration, position)
    WHERE registration IS NOT NULL;
-- Voiding statements are rare: find the voiders of incoming ids cheaply.
CREATE INDEX statements_tenant_voids ON statements (tenant, voids)
    WHERE voids IS NOT NULL;
-- Statements that target other statements, for the StatementRef filter rule.
CREATE INDEX statements_tenant_statement_ref ON statements (tenant, statement_ref)
    WHERE statement_ref IS NOT NULL;
-- Agent and activity filters (see filter_keys).
CREATE INDEX statements_filter_keys ON statements USING gin (filter_keys);

CREATE TABLE credentials (
    key         text        PRIMARY KEY,
    secret_hash text        NOT NULL,
    tenant      text        NOT NULL,
    scopes      text[]      NOT NULL,
    name        text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);

CREATE TABLE relay_checkpoints (
    name       text        PRIMARY KEY,
    position   bigint      NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE lrs_secrets (
    name       text        PRIMARY KEY,
    value      bytea       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
