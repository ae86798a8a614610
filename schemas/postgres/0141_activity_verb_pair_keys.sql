-- An activity and a verb together as one key (issue 19: filtered pages that
-- stay fast as the store grows).
--
-- GET /statements?activity=A&verb=V walked the activity's entries in
-- statement_keys by position and checked each candidate's verb on its row
-- until 100 of them had it: 4,132 buffers a page on average, 5,059 p99 at
-- 10,000,000 statements, where a page of the activity alone reads about 613.
-- From now on the writer gives every Statement whose Object is an Activity a
-- row of statement_key(tenant, 'P:' || activity IRI || chr(31) || verb IRI)
-- at its position (lrs/store/group_commit_sql.py INSERT_GROUP, derived from
-- its 'O:' key and its verb), and a referring Statement the same key of each
-- Statement its StatementRef chain reaches (lrs/ingest/stored_keys.py
-- reached_keys, lrs/store/ref_keys.py): the pair's page walks that key alone.
--
-- The Statements stored before cannot be given the key here: their Object and
-- verb are only in their JSON, which may be compressed or sealed (SQL cannot
-- read it).  So this records the log head as the low-water: every Statement
-- above it has its pair keys, and a page walks the pair key above it and the
-- activity's entries, with the verb checked on each row, at or below it
-- (lrs/store/page_query.py).  A store whose older Statements get their keys later
-- lowers it; it never rises.
--
-- Statements stored by code older than this after it runs would lack the key
-- above the low-water: stop every replica of the older code for this upgrade
-- (docs/deploy/README.md, "Upgrades").  Every appender takes the log head
-- first (lrs/store/writer.py), so holding it here stops ingest for the
-- migration: the low-water is the head the last group of the older code left.
SELECT position FROM log_head WHERE singleton FOR UPDATE;

CREATE TABLE pair_keys_low_water (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    position  bigint  NOT NULL   -- every Statement above this position has its pair keys
);

INSERT INTO pair_keys_low_water (singleton, position)
SELECT true, position FROM log_head WHERE singleton;
