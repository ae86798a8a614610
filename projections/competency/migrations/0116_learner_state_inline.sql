-- A learner's stored state (about 2.5 KB once every statement is evidence)
-- is rewritten by every batch that concerns the learner.  Past PostgreSQL's
-- default TOAST threshold (about 2 KB) each write compressed it with pglz
-- and moved it to the TOAST table; kept in the row uncompressed up to a
-- full page, the upsert measured about 10 µs of PostgreSQL CPU less per
-- event with every statement evidence (bench/live_apply_profile.py --warm,
-- docs/scaling.md "Projection consumers"), for about twice the bytes of a
-- compressed state.  Larger states are still compressed.  A replay gives
-- its fresh table the same storage parameters (projections/replay.py).
ALTER TABLE competency_learners SET (toast_tuple_target = 8160);
