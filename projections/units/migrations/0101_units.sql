-- Organisational units, the roster of learner memberships, and certification
-- counts per unit (projections/units).  Units and memberships are loaded by
-- `lrs roster load` or POST /competency/admin/...; they are not derived from
-- the event log.  The counts are: headcounts follow the roster, certified
-- counts are kept by the competency projection in its own transaction.

-- ministry -> agency -> unit (a unit may hold sub-units).
CREATE TABLE units (
    tenant    text NOT NULL,
    unit_id   text NOT NULL,
    parent_id text,
    kind      text NOT NULL CHECK (kind IN ('ministry', 'agency', 'unit')),
    name      text NOT NULL,
    PRIMARY KEY (tenant, unit_id),
    FOREIGN KEY (tenant, parent_id) REFERENCES units (tenant, unit_id) DEFERRABLE INITIALLY DEFERRED
);

-- Closure of the hierarchy: every (ancestor, descendant) pair, a unit being
-- its own ancestor at depth 0.  "U and its descendants" is one index range.
CREATE TABLE unit_tree (
    tenant      text    NOT NULL,
    ancestor_id text    NOT NULL,
    unit_id     text    NOT NULL,
    depth       integer NOT NULL,
    PRIMARY KEY (tenant, ancestor_id, unit_id)
);

CREATE INDEX unit_tree_unit ON unit_tree (tenant, unit_id);

-- A learner (the ifi_key of the actor) belongs to a unit from valid_from
-- (inclusive) to valid_to (exclusive; NULL: still does).  A learner's
-- memberships never overlap: a learner is in one unit at a time.
CREATE TABLE roster_memberships (
    tenant     text        NOT NULL,
    learner    text        NOT NULL,
    unit_id    text        NOT NULL,
    valid_from timestamptz NOT NULL,
    valid_to   timestamptz,
    PRIMARY KEY (tenant, learner, valid_from),
    FOREIGN KEY (tenant, unit_id) REFERENCES units (tenant, unit_id),
    CHECK (valid_to IS NULL OR valid_to > valid_from)
);

CREATE INDEX roster_memberships_unit ON roster_memberships (tenant, unit_id, valid_from);
CREATE INDEX roster_memberships_from ON roster_memberships (tenant, valid_from);
CREATE INDEX roster_memberships_to ON roster_memberships (tenant, valid_to) WHERE valid_to IS NOT NULL;

-- The counts below describe the roster at one moment per tenant, counted_at.
-- Loading a roster, and reading a summary, moves it to the present by
-- re-placing only the learners whose memberships start or end in between.
CREATE TABLE roster_clock (
    tenant     text        PRIMARY KEY,
    counted_at timestamptz NOT NULL
);

-- The unit each learner is in at counted_at (learners in no unit: no row).
CREATE TABLE learner_units (
    tenant  text NOT NULL,
    learner text NOT NULL,
    unit_id text NOT NULL,
    PRIMARY KEY (tenant, learner)
);

CREATE INDEX learner_units_unit ON learner_units (tenant, unit_id);

-- Learners directly in each unit at counted_at (the denominator).
CREATE TABLE unit_headcounts (
    tenant    text   NOT NULL,
    unit_id   text   NOT NULL,
    headcount bigint NOT NULL,
    PRIMARY KEY (tenant, unit_id)
);

-- Of those, how many hold each programme's certification.  Kept by the
-- competency projection: a row changes only when a learner's certification
-- is earned or lost, or the learner changes unit.
CREATE TABLE unit_certified (
    tenant          text   NOT NULL,
    unit_id         text   NOT NULL,
    program         text   NOT NULL,
    program_version text   NOT NULL,
    certified       bigint NOT NULL,
    PRIMARY KEY (tenant, unit_id, program, program_version)
);

-- Point-in-time answers fold a learner's evidence again from the log.
CREATE INDEX competency_statement_learners_learner ON competency_statement_learners (tenant, learner);
