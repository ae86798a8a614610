-- The statement writer's head lock and its lookup of what a small group
-- touches, in one round trip (lrs/store/writer.py, SELECT_HEAD_WITH_TOUCHED).
--
-- The lookup must see every group committed before the lock was granted: a
-- single statement reads one snapshot, taken before it waited for the lock,
-- so a group's lookup once took a round trip of its own after the lock.  A
-- VOLATILE function's queries each take a new snapshot (READ COMMITTED), so
-- the second query here sees what committed while the first one waited.
--
-- First row: the head (locked); then one row per stored statement with one
-- of the wanted (tenant, id) pairs, and per stored statement voiding one of
-- the (tenant, id) pairs of the group's own ids.  Each wanted id is its own
-- primary-key lookup (lrs/store/writer.py SELECT_TOUCHED says why).
CREATE FUNCTION log_head_locked_with_touched(
    wanted_tenants text[], wanted_ids uuid[], own_tenants text[], own_ids uuid[]
) RETURNS TABLE (
    head_position bigint, head_hash bytea, head_stored timestamptz, key_epoch bigint,
    tenant text, statement_id uuid, payload bytea, voids uuid, voided boolean,
    stored timestamptz, "position" bigint
) LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    RETURN QUERY
    SELECT h.position, h.hash, h.stored, h.key_epoch,
           NULL::text, NULL::uuid, NULL::bytea, NULL::uuid, NULL::boolean, NULL::timestamptz, NULL::bigint
    FROM log_head h WHERE h.singleton FOR UPDATE;
    RETURN QUERY
    SELECT NULL::bigint, NULL::bytea, NULL::timestamptz, NULL::bigint,
           s.tenant, s.statement_id, (SELECT e.payload FROM events e WHERE e.position = s.position),
           s.voids, s.voided, s.stored, s.position
    FROM unnest(wanted_tenants, wanted_ids) AS w(t, id)
    CROSS JOIN LATERAL (
        SELECT st.tenant, st.statement_id, st.voids, st.voided, st.stored, st.position FROM statements st
        WHERE st.tenant = w.t AND st.statement_id = w.id LIMIT 1
    ) AS s
    UNION ALL
    SELECT NULL::bigint, NULL::bytea, NULL::timestamptz, NULL::bigint,
           s.tenant, s.statement_id, (SELECT e.payload FROM events e WHERE e.position = s.position),
           s.voids, s.voided, s.stored, s.position
    FROM unnest(own_tenants, own_ids) AS o(t, id)
    JOIN statements s ON s.tenant = o.t AND s.voids = o.id AND s.voids IS NOT NULL;
END
$$;
