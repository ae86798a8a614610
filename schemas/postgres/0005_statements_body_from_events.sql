-- The statements read model stops keeping its own copy of each Statement's
-- JSON.  statements.body held the same bytes as the payload of the event at
-- the same position, so every statement was written, and WAL-logged, twice
-- (about a quarter of the WAL of an ingested statement).  Readers take the
-- JSON from events, joined on position (the primary key of events).
--
-- On a database that already holds statements, dropping the column only
-- changes the catalog; the old values' space is reused as rows are vacuumed.

ALTER TABLE statements DROP COLUMN body;
