-- A replay reads the erasure events alone (projections/units/erased.py: an
-- erased learner's place in the unit totals), through this index.
CREATE INDEX events_erasure ON events (position) WHERE event_type = 'erasure';
