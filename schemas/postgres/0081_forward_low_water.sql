-- lrs forward: the checkpoint becomes a low-water mark.  `position` is now
-- the highest position P such that every log position at or below P was
-- dealt with (accepted by the target, parked, not selected by the filter, or
-- not a statement event); `done_above` holds the runs of positions above P
-- dealt with too, as first, last, first, last, ... (connectors/forward/
-- lowwater.py).  A message awaiting its redelivery while later ones were
-- acknowledged is then never taken for a copy when it is first delivered
-- again (a recreated consumer).  A row written before this migration keeps
-- its highest position as the mark: nothing below it can be told apart now.
ALTER TABLE forward_checkpoints ADD COLUMN done_above bigint[] NOT NULL DEFAULT '{}';
