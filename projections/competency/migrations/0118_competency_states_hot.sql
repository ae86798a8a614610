-- A learner's competency rows that a new statement changes are updated in
-- place (projections/competency/store.py, UPDATE_STATE_ROWS) rather than
-- deleted and copied in again.  Most such updates keep the row's status,
-- the one indexed column that a refold changes (the primary key never
-- does), so the update can be HOT (no index entry, the old version pruned
-- within the page) when the new version fits in the same page: a fillfactor
-- of 80 leaves a fifth of each page for them.  It applies to pages written
-- from now on; a replay's fresh table takes it from the live one
-- (projections/replay.py copies the storage parameters).
ALTER TABLE competency_states SET (fillfactor = 80);
