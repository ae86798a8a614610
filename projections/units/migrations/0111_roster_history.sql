-- The roster's history (projections/units/history.py): memberships are
-- bitemporal.  valid_from/valid_to say when a learner was in a unit;
-- recorded_* and superseded_* name the roster events (position and stored
-- time) from which, and until which, the LRS held that row to be true.  A
-- roster load supersedes rows, it never deletes them.  Units, the tree and
-- the memberships are rebuilt from the 'roster' events by
-- `lrs replay competency`, so their foreign keys go (the loader checks them).
ALTER TABLE roster_memberships DROP CONSTRAINT roster_memberships_pkey;
ALTER TABLE roster_memberships DROP CONSTRAINT roster_memberships_tenant_unit_id_fkey;
ALTER TABLE units DROP CONSTRAINT units_tenant_parent_id_fkey;

-- Memberships loaded before the roster was in the log: recorded at position
-- 0 (before any event), so `as_of` sees them as always known; load the
-- roster again to have them in the log.
ALTER TABLE roster_memberships
    ADD COLUMN recorded_position   bigint      NOT NULL DEFAULT 0,
    ADD COLUMN recorded_at         timestamptz NOT NULL DEFAULT '-infinity',
    ADD COLUMN superseded_position bigint,
    ADD COLUMN superseded_at       timestamptz;
ALTER TABLE roster_memberships
    ALTER COLUMN recorded_position DROP DEFAULT,
    ALTER COLUMN recorded_at DROP DEFAULT;
ALTER TABLE roster_memberships ADD PRIMARY KEY (tenant, learner, valid_from, recorded_position);

-- The current roster (not superseded) is what the live counts place.
DROP INDEX roster_memberships_unit;
DROP INDEX roster_memberships_from;
DROP INDEX roster_memberships_to;
CREATE INDEX roster_memberships_unit ON roster_memberships (tenant, unit_id, valid_from)
    WHERE superseded_position IS NULL;
CREATE INDEX roster_memberships_from ON roster_memberships (tenant, valid_from)
    WHERE superseded_position IS NULL;
CREATE INDEX roster_memberships_to ON roster_memberships (tenant, valid_to)
    WHERE valid_to IS NOT NULL AND superseded_position IS NULL;
-- "As known at T": every row of a unit, by when it was recorded.
CREATE INDEX roster_memberships_known ON roster_memberships (tenant, unit_id, recorded_at);
-- What one event recorded or superseded (a replay's catch-up asks).
CREATE INDEX roster_memberships_recorded ON roster_memberships (recorded_position);
CREATE INDEX roster_memberships_superseded ON roster_memberships (superseded_position)
    WHERE superseded_position IS NOT NULL;
