-- The statement writer's INSERT sent with its COMMIT in one round trip
-- (lrs/store/group_insert_commit.py) cannot read what the INSERT returns,
-- so the one case that needs more work before the COMMIT (a Statement stored
-- before the group refers to one of the group's: lrs/store/ref_keys.py)
-- fails the INSERT instead, with its own SQLSTATE, and the writer writes
-- the group again with the usual INSERT.
CREATE FUNCTION group_referred_later() RETURNS boolean LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    RAISE EXCEPTION 'a stored Statement refers to one of the group''s'
        USING ERRCODE = 'LR001';
END
$$;
