-- A learner's state is now stored compressed by the projection itself
-- (projections/competency/codec.py: one zstd frame, about 1.2 KB for a
-- learner of nine statements where the layout is 3.2 KB).  PostgreSQL's
-- own compression (pglz; this build has no lz4) would only spend CPU on
-- those bytes: EXTERNAL storage never compresses the column, and moves it
-- out of the row only past toast_tuple_target (migration 0116).
--
-- Every batch that concerns a learner updates its row, changing only
-- ``state`` and ``position``, neither of which is indexed: the update can
-- be HOT (no index entry, the old version pruned within the page, not left
-- to autovacuum) when the new version fits in the same page.  A fillfactor
-- of 70 leaves 30 % of each page for those new versions.  It applies to
-- pages written from now on; a replay's fresh table takes it from the live
-- one (projections/replay.py copies the storage parameters, and LIKE
-- INCLUDING ALL the column's storage).
ALTER TABLE competency_learners ALTER COLUMN state SET STORAGE EXTERNAL;
ALTER TABLE competency_learners SET (fillfactor = 70);
