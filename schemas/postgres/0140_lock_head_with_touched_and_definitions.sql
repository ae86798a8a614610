-- The statement writer's head lock, its lookup of what a small group touches
-- and the canonical Activity Definitions the group may merge, in one round
-- trip (lrs/store/writer.py, SELECT_HEAD_WITH_TOUCHED): a group of
-- single-statement requests whose senders hold `define` read and locked its
-- definitions in a round trip of its own, under the head lock, so every such
-- group held the lock one round trip longer (docs/scaling.md).
--
-- As log_head_locked_with_touched (0099), each query of this VOLATILE
-- function takes its own snapshot, so the lookups see what committed while
-- the lock was waited for.  The definitions keep the catch-up's lock order
-- (lrs.store.activities.catch_up_definitions locks the checkpoint, then the
-- definitions): the checkpoint row is locked before them, and only when
-- definitions are asked for (the group's INSERT moves it anyway).
--
-- Rows: first the head (locked); then the touched statements (tenant and
-- statement_id set); then one row per wanted definition that exists
-- (def_tenant and activity_id set), each locked by its own primary-key
-- lookup, in the order given.
CREATE FUNCTION log_head_locked_with_touched_and_definitions(
    wanted_tenants text[], wanted_ids uuid[], own_tenants text[], own_ids uuid[],
    def_tenants text[], def_ids text[]
) RETURNS TABLE (
    head_position bigint, head_hash bytea, head_stored timestamptz, key_epoch bigint,
    tenant text, statement_id uuid, payload bytea, voids uuid, voided boolean,
    stored timestamptz, "position" bigint,
    def_tenant text, activity_id text, definition bytea
) LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    RETURN QUERY
    SELECT h.position, h.hash, h.stored, h.key_epoch,
           NULL::text, NULL::uuid, NULL::bytea, NULL::uuid, NULL::boolean, NULL::timestamptz, NULL::bigint,
           NULL::text, NULL::text, NULL::bytea
    FROM log_head h WHERE h.singleton FOR UPDATE;
    RETURN QUERY
    SELECT NULL::bigint, NULL::bytea, NULL::timestamptz, NULL::bigint,
           s.tenant, s.statement_id, (SELECT e.payload FROM events e WHERE e.position = s.position),
           s.voids, s.voided, s.stored, s.position,
           NULL::text, NULL::text, NULL::bytea
    FROM unnest(wanted_tenants, wanted_ids) AS w(t, id)
    CROSS JOIN LATERAL (
        SELECT st.tenant, st.statement_id, st.voids, st.voided, st.stored, st.position FROM statements st
        WHERE st.tenant = w.t AND st.statement_id = w.id LIMIT 1
    ) AS s
    UNION ALL
    SELECT NULL::bigint, NULL::bytea, NULL::timestamptz, NULL::bigint,
           s.tenant, s.statement_id, (SELECT e.payload FROM events e WHERE e.position = s.position),
           s.voids, s.voided, s.stored, s.position,
           NULL::text, NULL::text, NULL::bytea
    FROM unnest(own_tenants, own_ids) AS o(t, id)
    JOIN statements s ON s.tenant = o.t AND s.voids = o.id AND s.voids IS NOT NULL;
    IF cardinality(def_ids) > 0 THEN
        PERFORM 1 FROM activity_definitions_checkpoint c WHERE c.singleton FOR UPDATE;
        RETURN QUERY
        SELECT NULL::bigint, NULL::bytea, NULL::timestamptz, NULL::bigint,
               NULL::text, NULL::uuid, NULL::bytea, NULL::uuid, NULL::boolean, NULL::timestamptz, NULL::bigint,
               d.tenant, d.activity_id, d.definition
        FROM unnest(def_tenants, def_ids) AS k(t, id)
        CROSS JOIN LATERAL (
            SELECT a.tenant, a.activity_id, a.definition FROM activity_definitions a
            WHERE a.tenant = k.t AND a.activity_id = k.id FOR UPDATE
        ) AS d;
    END IF;
END
$$;
