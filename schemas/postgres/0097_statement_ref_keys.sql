-- StatementRef chains as keys (issue 19: filtered pages that stay fast as the store grows).
--
-- A filter also returns a Statement whose Object is a StatementRef when a
-- Statement its chain reaches (up to 10 targets, voided or not) matches
-- (xAPI-Communication 2.1.3, "Filter Conditions for StatementRefs").  The
-- reader found those by a recursive walk per page, back from the page's
-- matches or forward from the window's referring Statements: 20-50 ms p99 for
-- an activity, a rare verb or a busy learner at 3-6 M statements.  Now a
-- referring Statement holds in statement_keys, at its own position, the keys
-- of every Statement its chain reaches: their agent and activity keys, their
-- verb ('V:' || IRI, the hash statements.verb_key holds) and registration
-- ('R:' || the uuid's text), the authority not (lrs/ingest/stored_keys.py
-- reached_keys).  The walks that find matches then find it too; its JSON and
-- its chain's decide, as for every candidate (lrs/store/reader.py).  The
-- writer keeps the rows from now on, for targets stored before or after
-- their referrer (lrs/store/ref_keys.py).
--
-- This fills them for the referring Statements already stored.  Statements
-- stored by code without lrs/store/ref_keys.py after this runs would lack
-- them: stop every replica of the older code for this upgrade
-- (docs/deploy/README.md, "Upgrades").  Every appender takes the log head
-- first (lrs/store/writer.py), so holding it here stops ingest for the
-- migration and nothing is written between the fill and its commit.
SELECT position FROM log_head WHERE singleton FOR UPDATE;

-- The keys of the chains of every referring Statement stored, those it lacks.
-- Also for a store filled without the writer (bench/bulk_copy.py runs it after
-- a load); running it again adds nothing.
--
-- A stored Statement's own keys are its statement_keys rows (the JSON may be
-- compressed or sealed: SQL cannot read it), which have no index by
-- position: the table is read once, 65,536 pages (512 MB) a step, keeping
-- the rows of the Statements some chain reaches (about 1 in 500).  (Rows of
-- a target that refers on itself come with its own keys: a referring
-- Statement then holds more than its chain's keys within 10 steps, which
-- costs the reader a candidate's check, never a wrong answer.)
CREATE FUNCTION add_statement_ref_keys() RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    pages bigint := pg_relation_size('statement_keys') / current_setting('block_size')::int;
    low   bigint := 0;
    added bigint;
BEGIN
    -- each referring Statement and the positions its chain reaches (10 steps,
    -- lrs/store/ref_keys.py MAX_REF_DEPTH), one primary-key lookup a step
    CREATE TEMP TABLE ref_chain AS
    WITH RECURSIVE chain(tenant, origin, next, target, depth) AS (
        SELECT s.tenant, s.position, s.statement_ref, NULL::bigint, 0
        FROM statements s WHERE s.statement_ref IS NOT NULL
        UNION ALL
        SELECT c.tenant, c.origin, t.statement_ref, t.position, c.depth + 1
        FROM chain c JOIN statements t ON t.tenant = c.tenant AND t.statement_id = c.next
        WHERE c.depth < 10
    )
    SELECT DISTINCT tenant, origin, target FROM chain WHERE depth > 0;
    CREATE TEMP TABLE ref_target_keys (key bigint, position bigint);
    WHILE low <= pages LOOP
        INSERT INTO ref_target_keys
        SELECT k.key, k.position FROM statement_keys k
        WHERE k.ctid >= format('(%s,0)', low)::tid AND k.ctid < format('(%s,0)', low + 65536)::tid
          AND k.position IN (SELECT target FROM ref_chain);
        low := low + 65536;
    END LOOP;
    INSERT INTO statement_keys (key, position)
    SELECT DISTINCT r.key, r.origin FROM (
        SELECT k.key, c.origin FROM ref_chain c JOIN ref_target_keys k ON k.position = c.target
        UNION ALL
        SELECT v.key, c.origin
        FROM ref_chain c JOIN statements t ON t.tenant = c.tenant AND t.position = c.target,
             LATERAL (VALUES (t.verb_key), (statement_key(t.tenant, 'R:' || t.registration::text))) AS v(key)
    ) AS r
    WHERE r.key IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM statement_keys e WHERE e.key = r.key AND e.position = r.origin);
    GET DIAGNOSTICS added = ROW_COUNT;
    DROP TABLE ref_chain, ref_target_keys;
    RETURN added;
END
$$;

SELECT add_statement_ref_keys();

-- The window's referring Statements were walked by position for the
-- StatementRef part of a filtered page; no reader walks them so any more.
-- (statements_tenant_statement_ref stays: the writer finds a new Statement's
-- referrers through it.)
DROP INDEX statements_tenant_ref_position;
