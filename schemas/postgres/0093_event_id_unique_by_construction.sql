-- events.event_id is unique by construction, not by an index: every event's id
-- is a version 7 UUID the appending process mints (lrs/store/ids.py
-- TimeOrderedUuids: the millisecond and 74 random bits), nothing looks an
-- event up by it (readers go by position), and the hash chain covers it.  The
-- unique index cost every event an index entry of about 32 bytes and its
-- insert.  (docs/scaling.md's partitioning plan already counted on this: a
-- partitioned events table cannot have a global unique index on it.)
ALTER TABLE events DROP CONSTRAINT events_event_id_key;
