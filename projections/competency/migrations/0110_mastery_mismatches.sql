-- Evidence judged with a masteryScore other than the statement's own
-- (the alignment table's overrode the platform's cmi5 masteryscore), one row
-- per (statement, aligned activity), for the per-platform report
-- (GET /competency/admin/mastery-mismatches).  Derived from the log by the
-- competency projection: rebuilt by `lrs replay competency`.  A voided
-- statement stays listed: the report is about what platforms send.
CREATE TABLE competency_mastery_mismatches (
    tenant            text             NOT NULL,
    statement_id      uuid             NOT NULL,
    activity          text             NOT NULL,
    platform          text             NOT NULL,   -- context.platform, else the authority's IFI key, else ''
    learner           text             NOT NULL,
    timestamp         timestamptz      NOT NULL,
    score             double precision,
    mastery_score     double precision NOT NULL,   -- the alignment table's, which judged it
    statement_mastery double precision NOT NULL,   -- the statement's own
    passed            boolean,                     -- the judgement under the table's masteryScore
    PRIMARY KEY (tenant, statement_id, activity)
);

CREATE INDEX competency_mastery_mismatches_platform ON competency_mastery_mismatches (tenant, platform, activity);
