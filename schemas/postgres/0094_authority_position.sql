-- The statements/read/mine scope (a credential that may read only the
-- Statements it sent) walks its own Statements in position order.
--
-- statements.authority_key (statement_key(tenant, 'U:' || the authority's
-- key), 0092) was only a condition on the rows a page read through the
-- tenant's position index: a client with few Statements of its own read the
-- whole tenant to fill a page (every page of it, and every page that found
-- fewer than the limit).  This index holds the key and the position, so a
-- page reads its entries from the end of the authority's range and stops
-- (lrs/store/statement_walks.py).  The key includes the tenant.
--
-- Cost: about 32 bytes a statement on disk (two bigints, the index entry's
-- header and line pointer; 12.6 MB at 400,000 statements), one index insert
-- per statement.
--
-- Building it reads the whole table and sorts its keys (0.53-0.58 s at
-- 400,000 statements on a busy 2-core machine, so about 15 s at 10 million)
-- while holding a SHARE lock: reads go on, every write (ingest) waits until
-- it is built.  A large store may build it first, without stopping ingest,
-- and this migration then finds it and builds nothing:
--
--   CREATE INDEX CONCURRENTLY IF NOT EXISTS statements_authority_key_position
--       ON statements (authority_key, position);
--
-- (CONCURRENTLY cannot run inside a migration's transaction; should it fail
-- half-way it leaves an INVALID index: DROP INDEX it and run it again.  Left
-- invalid, this migration drops it and builds it, with the lock above.)
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_index
               WHERE indexrelid = to_regclass('statements_authority_key_position') AND NOT indisvalid) THEN
        DROP INDEX statements_authority_key_position;
    END IF;
END $$;
CREATE INDEX IF NOT EXISTS statements_authority_key_position ON statements (authority_key, position);
