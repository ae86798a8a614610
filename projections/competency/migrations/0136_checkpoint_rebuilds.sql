-- How many times a replay has replaced a projection's state (each swap of
-- rebuilt tables counts one; projections/checkpoints.py CheckpointStore.replace).
-- A live runner keeps learner states in memory keyed by the checkpoint it
-- left; a rebuild that ends at exactly that position would otherwise look
-- like no change, and the runner would go on from states the rebuild
-- replaced (an event parked live and applied by the rebuild, say).  With
-- the count beside the position, every rebuild drops that memory.
ALTER TABLE projection_checkpoints ADD COLUMN rebuilds bigint NOT NULL DEFAULT 0;
