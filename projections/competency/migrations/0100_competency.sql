-- The competency projection (projections/competency) and the runner's bookkeeping
-- (projections/runner.py).  Everything here is derived from the event log and
-- can be rebuilt from it with `lrs replay competency`.

-- One row per projection: the last log position applied.  Written in the same
-- transaction as the state it describes, before the messages are acknowledged.
CREATE TABLE projection_checkpoints (
    name           text        PRIMARY KEY,
    position       bigint      NOT NULL,
    rule_version   integer     NOT NULL,
    catalog_digest text        NOT NULL,   -- sha256 of the frameworks the state was built with
    updated_at     timestamptz NOT NULL DEFAULT now()
);

-- Deterministic failures of an event (the projection's pure rules raised).
-- After max attempts the event is parked and the projection moves on.
CREATE TABLE projection_failures (
    name      text        NOT NULL,
    position  bigint      NOT NULL,
    attempts  integer     NOT NULL,
    error     text        NOT NULL,
    failed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (name, position)
);

CREATE TABLE projection_parked (
    name      text        NOT NULL,
    position  bigint      NOT NULL,
    tenant    text        NOT NULL,
    attempts  integer     NOT NULL,
    error     text        NOT NULL,
    parked_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (name, position)
);

-- Each learner's whole state (msgspec JSON of projections.competency.model.LearnerState,
-- canonical: keys sorted), the source for digests and refolds.
CREATE TABLE competency_learners (
    tenant   text   NOT NULL,
    learner  text   NOT NULL,   -- ifi_key of the actor
    state    bytea  NOT NULL,
    position bigint NOT NULL,   -- log position of the last event that changed it
    PRIMARY KEY (tenant, learner)
);

-- The same state flattened for queries: one row per (learner, competency).
CREATE TABLE competency_states (
    tenant            text        NOT NULL,
    learner           text        NOT NULL,
    competency        text        NOT NULL,
    status            text        NOT NULL CHECK (status IN ('not_started', 'in_progress', 'mastered')),
    level             text,
    level_rank        integer     NOT NULL,
    best_score        double precision,
    latest_score      double precision,
    evidence_count    integer     NOT NULL,
    first_mastered_at timestamptz,
    rule_version      integer     NOT NULL,
    PRIMARY KEY (tenant, learner, competency)
);

CREATE INDEX competency_states_competency ON competency_states (tenant, competency, status);

-- One row per (learner, programme) the learner has evidence towards.
CREATE TABLE competency_certifications (
    tenant          text        NOT NULL,
    learner         text        NOT NULL,
    program         text        NOT NULL,
    program_version text        NOT NULL,
    earned          boolean     NOT NULL,
    earned_at       timestamptz,
    statement_ids   uuid[]      NOT NULL,
    PRIMARY KEY (tenant, learner, program, program_version)
);

CREATE INDEX competency_certifications_program
    ON competency_certifications (tenant, program, program_version) WHERE earned;

-- Which learner a statement that is evidence belongs to, so a voiding
-- statement (whose actor is whoever voided it) reaches the right learner.
CREATE TABLE competency_statement_learners (
    tenant       text NOT NULL,
    statement_id uuid NOT NULL,
    learner      text NOT NULL,
    PRIMARY KEY (tenant, statement_id)
);

-- Every voiding seen, so a voided statement that is projected after its
-- voiding statement stays out.
CREATE TABLE competency_voids (
    tenant              text NOT NULL,
    target_id           uuid NOT NULL,
    voiding_statement_id uuid NOT NULL,
    PRIMARY KEY (tenant, target_id)
);
