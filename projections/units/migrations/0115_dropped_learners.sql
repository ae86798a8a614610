-- Erased learners left out of the unit totals (projections/units/erased.py):
-- with LRS_ERASED_LEARNERS_IN_TOTALS=drop (the default) the competency
-- projection adds the learner an 'erasure' event names here, and the
-- placement (learner_units, unit_headcounts, unit_certified) and the
-- point-in-time members leave them out; with =count the table stays empty.
-- Rebuilt from the erasure events by `lrs replay competency`.
CREATE TABLE units_dropped_learners (
    tenant           text   NOT NULL,
    learner          text   NOT NULL,
    erased_position  bigint NOT NULL,
    PRIMARY KEY (tenant, learner)
);
