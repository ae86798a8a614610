-- A learner's state is stored whole in ``state`` now and then, and in
-- between each batch that adds to it appends only what it added to
-- ``tail`` (projections/competency/codec.py, encode_tail: the evidence
-- inserted, the competencies and certifications that changed), instead of
-- encoding and writing the whole state again: the cost of a batch no
-- longer grows with the learner's state.  When the tail outgrows a share
-- of the state, the state is stored whole again and the tail emptied
-- (projections/competency/store.py).  NULL: no tail (every state a replay
-- writes, and every state stored before).
--
-- Not indexed, so appending to it keeps the update HOT; EXTERNAL, so
-- PostgreSQL never spends CPU compressing it (as ``state``, migration 0117).
ALTER TABLE competency_learners ADD COLUMN tail bytea;
ALTER TABLE competency_learners ALTER COLUMN tail SET STORAGE EXTERNAL;
-- A row now grows between its whole writes (to about twice its state's
-- bytes, projections/competency/codec.py tail_fits): more room in each page
-- for its next version keeps those updates HOT (fillfactor 70 was sized for
-- rows that keep their size, migration 0117).
ALTER TABLE competency_learners SET (fillfactor = 60);
