-- A referring Statement's rows for its chain's authorities, when given in SQL.
--
-- The writer no longer gives a Statement a statement_keys row of its Agent
-- authority's related agent key ('a:' || the IFI key): statements.authority_key
-- ('U:' || the same key) finds it, and a related_agents page walks that index
-- beside the agent's rows (lrs/store/group_columns.py key_literal,
-- lrs/store/statement_walks.py; branch b100-rows).  A referring Statement holds the
-- keys of the Statements its chain reaches: the writer derives them from
-- their JSON ('a:' of the target's authority included, lrs/store/ref_keys.py),
-- but add_statement_ref_keys() (0097; a bulk load, bench/bulk_copy.py) copies
-- the targets' rows, where that key has none now, and SQL cannot derive it
-- from its hash.  So the function also copies each target's authority_key, a
-- 'U:' row at the referring Statement's position, which the related_agents
-- page walks in statement_keys too (only referring Statements hold such rows).
-- Nothing is rewritten: stores keep the rows they hold.

CREATE OR REPLACE FUNCTION add_statement_ref_keys() RETURNS bigint
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
             LATERAL (VALUES (t.verb_key), (statement_key(t.tenant, 'R:' || t.registration::text)),
                     (t.authority_key)) AS v(key)
    ) AS r
    WHERE r.key IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM statement_keys e WHERE e.key = r.key AND e.position = r.origin);
    GET DIAGNOSTICS added = ROW_COUNT;
    DROP TABLE ref_chain, ref_target_keys;
    RETURN added;
END
$$;
