-- A key filter's page checks each candidate without reading its row.
--
-- A page of one key (an activity, a course with related_activities, an
-- agent) walks the key's entries in statement_keys by position and used to
-- look each candidate's row up (statements_tenant_position and the heap,
-- about 4 of a page's 8 buffers a statement) for two conditions: the tenant
-- and NOT voided.  The tenant is in the key's hash and is checked again on
-- the event the page reads anyway (lrs/store/page_query.py); voided Statements
-- are few (one in two thousand in the benchmark's mix), so whether a
-- candidate is one is a probe of this small index instead.  The writer's
-- voiding UPDATE and a Statement stored already voided add its entry (the
-- voiding UPDATE, which changes a column this index names, is no longer a
-- HOT update: each voided Statement costs its row's index entries again,
-- one Statement in thousands).
--
-- Built beforehand with CREATE INDEX CONCURRENTLY IF NOT EXISTS and the
-- definition below (docs/deploy/README.md), a build that failed half-way
-- leaves an INVALID index no query uses: this migration drops it and builds
-- it again.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_index
               WHERE indexrelid = to_regclass('statements_tenant_voided_position') AND NOT indisvalid) THEN
        DROP INDEX statements_tenant_voided_position;
    END IF;
END $$;
CREATE INDEX IF NOT EXISTS statements_tenant_voided_position ON statements (tenant, position) WHERE voided;
