"""The statements of the units projection's tables (migrations/0101_units.sql
and after): units and their tree, roster memberships, the clock, the
placing of learners and the counts (:mod:`projections.units.store` writes
them, :mod:`projections.units.reads` and :mod:`projections.units.rebuild`
read them).  ``{c}`` in the digests' statements: the collation of each text
key (projections/byte_order.py)."""

from __future__ import annotations

LOCK_EXCLUSIVE = "SELECT pg_advisory_xact_lock($1)"
LOCK_SHARED = "SELECT pg_advisory_xact_lock_shared($1)"
SELECT_UNITS = "SELECT unit_id, parent_id, kind, name FROM units WHERE tenant = $1 ORDER BY unit_id"
SELECT_UNIT = "SELECT unit_id, parent_id, kind, name FROM units WHERE tenant = $1 AND unit_id = $2"
UPSERT_UNITS = """
INSERT INTO units (tenant, unit_id, parent_id, kind, name)
SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[], $5::text[])
ON CONFLICT (tenant, unit_id) DO UPDATE SET parent_id = EXCLUDED.parent_id, kind = EXCLUDED.kind, name = EXCLUDED.name
"""
DELETE_TREE = "DELETE FROM unit_tree WHERE tenant = $1"
INSERT_TREE = """
INSERT INTO unit_tree (tenant, ancestor_id, unit_id, depth)
WITH RECURSIVE up (ancestor_id, unit_id, depth) AS (
    SELECT unit_id, unit_id, 0 FROM units WHERE tenant = $1
    UNION ALL
    SELECT u.parent_id, up.unit_id, up.depth + 1
    FROM up JOIN units u ON u.tenant = $1 AND u.unit_id = up.ancestor_id
    WHERE u.parent_id IS NOT NULL
)
SELECT $1, ancestor_id, unit_id, depth FROM up
"""
SELECT_CURRENT = """
SELECT learner, unit_id, valid_from, valid_to FROM roster_memberships
WHERE tenant = $1 AND learner = ANY($2::text[]) AND superseded_position IS NULL
"""
SUPERSEDE = """
UPDATE roster_memberships SET superseded_position = $2, superseded_at = $3
WHERE tenant = $1 AND superseded_position IS NULL
  AND (learner, valid_from) IN (SELECT * FROM unnest($4::text[], $5::timestamptz[]))
"""
MEMBERSHIP_COLUMNS = [
    "tenant", "learner", "unit_id", "valid_from", "valid_to", "recorded_position", "recorded_at",
    "superseded_position", "superseded_at",
]
SELECT_EVENT_WRITTEN = """
SELECT EXISTS (SELECT 1 FROM roster_memberships WHERE recorded_position = $1)
    OR EXISTS (SELECT 1 FROM roster_memberships WHERE superseded_position = $1)
"""
SELECT_CLOCK = "SELECT counted_at FROM roster_clock WHERE tenant = $1"
UPSERT_CLOCK = """
INSERT INTO roster_clock (tenant, counted_at) VALUES ($1, $2)
ON CONFLICT (tenant) DO UPDATE SET counted_at = GREATEST(roster_clock.counted_at, EXCLUDED.counted_at)
"""
SELECT_CROSSING = """
SELECT learner FROM roster_memberships
WHERE tenant = $1 AND valid_from > $2 AND valid_from <= $3 AND superseded_position IS NULL
UNION
SELECT learner FROM roster_memberships
WHERE tenant = $1 AND valid_to > $2 AND valid_to <= $3 AND superseded_position IS NULL
"""
SELECT_ANY_CROSSING = """
SELECT EXISTS (SELECT 1 FROM roster_memberships
               WHERE tenant = $1 AND valid_from > $2 AND valid_from <= $3 AND superseded_position IS NULL)
    OR EXISTS (SELECT 1 FROM roster_memberships
               WHERE tenant = $1 AND valid_to > $2 AND valid_to <= $3 AND superseded_position IS NULL)
"""
SELECT_WANTED = """
SELECT DISTINCT ON (learner) learner, unit_id FROM roster_memberships m
WHERE tenant = $1 AND learner = ANY($2::text[]) AND valid_from <= $3 AND (valid_to IS NULL OR valid_to > $3)
  AND superseded_position IS NULL
  AND NOT EXISTS (SELECT 1 FROM units_dropped_learners d WHERE d.tenant = m.tenant AND d.learner = m.learner)
ORDER BY learner, valid_from DESC
"""
# Erased learners left out of the totals (erased.py).
INSERT_DROPPED = """
INSERT INTO units_dropped_learners (tenant, learner, erased_position) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING
"""
SELECT_ERASURE_EVENTS = """
SELECT tenant, position, payload FROM events WHERE event_type = 'erasure' AND position <= $1 ORDER BY position
"""
SELECT_ALL_DROPPED = "SELECT 'dropped', tenant, learner FROM units_dropped_learners ORDER BY tenant{c}, learner{c}"
SELECT_PLACED = "SELECT learner, unit_id FROM learner_units WHERE tenant = $1 AND learner = ANY($2::text[])"
SELECT_EARNED = """
SELECT learner, program, program_version FROM competency_certifications
WHERE tenant = $1 AND earned AND learner = ANY($2::text[])
"""
DELETE_PLACED = "DELETE FROM learner_units WHERE tenant = $1 AND learner = ANY($2::text[])"
INSERT_PLACED = "INSERT INTO learner_units (tenant, learner, unit_id) SELECT $1, * FROM unnest($2::text[], $3::text[])"
ADD_HEADCOUNTS = """
INSERT INTO unit_headcounts (tenant, unit_id, headcount)
SELECT $1, * FROM unnest($2::text[], $3::bigint[])
ON CONFLICT (tenant, unit_id) DO UPDATE SET headcount = unit_headcounts.headcount + EXCLUDED.headcount
"""
ADD_CERTIFIED = """
INSERT INTO unit_certified (tenant, unit_id, program, program_version, certified)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[])
ON CONFLICT (tenant, unit_id, program, program_version)
DO UPDATE SET certified = unit_certified.certified + EXCLUDED.certified
"""
SELECT_UNITS_OF = """
SELECT tenant, learner, unit_id FROM learner_units
WHERE (tenant, learner) IN (SELECT * FROM unnest($1::text[], $2::text[]))
"""
RECOUNT_CERTIFIED = """
INSERT INTO unit_certified (tenant, unit_id, program, program_version, certified)
SELECT p.tenant, p.unit_id, c.program, c.program_version, count(*)
FROM learner_units p JOIN competency_certifications c ON c.tenant = p.tenant AND c.learner = p.learner
WHERE c.earned
GROUP BY p.tenant, p.unit_id, c.program, c.program_version
"""
SUM_HEADCOUNT = """
SELECT coalesce(sum(h.headcount), 0)::bigint FROM unit_tree t
JOIN unit_headcounts h ON h.tenant = t.tenant AND h.unit_id = t.unit_id
WHERE t.tenant = $1 AND t.ancestor_id = $2 AND ($3 OR t.depth = 0)
"""
SUM_CERTIFIED = """
SELECT coalesce(sum(c.certified), 0)::bigint FROM unit_tree t
JOIN unit_certified c ON c.tenant = t.tenant AND c.unit_id = t.unit_id
WHERE t.tenant = $1 AND t.ancestor_id = $2 AND ($3 OR t.depth = 0) AND c.program = $4 AND c.program_version = $5
"""
# Members at valid time $4 as the roster was known at $5 (recorded by then
# and not yet superseded).
SELECT_MEMBERS_AT = """
SELECT DISTINCT m.learner FROM unit_tree t
JOIN roster_memberships m ON m.tenant = t.tenant AND m.unit_id = t.unit_id
WHERE t.tenant = $1 AND t.ancestor_id = $2 AND ($3 OR t.depth = 0)
  AND m.valid_from <= $4 AND (m.valid_to IS NULL OR m.valid_to > $4)
  AND m.recorded_at <= $5 AND (m.superseded_at IS NULL OR m.superseded_at > $5)
  AND NOT EXISTS (SELECT 1 FROM units_dropped_learners d WHERE d.tenant = m.tenant AND d.learner = m.learner)
"""
SELECT_MEMBERSHIPS = """
SELECT learner, unit_id, valid_from, valid_to, recorded_position, recorded_at, superseded_position, superseded_at
FROM roster_memberships
WHERE tenant = $1 AND ($2::text IS NULL OR unit_id = $2) AND ($3::text IS NULL OR learner = $3)
  AND ($7 OR superseded_position IS NULL)
  AND (learner, valid_from, recorded_position) > ($4, $5, $8)
ORDER BY learner, valid_from, recorded_position LIMIT $6
"""
# Learners placed in the unit (and below it) at the clock, with their
# status in one programme: certified (earned), in_progress (a certification
# row: evidence towards it), not_started (no row); in learner order.
_UNIT_LEARNERS = """
SELECT p.learner, p.unit_id, c.earned, c.earned_at,
       CASE WHEN c.earned THEN 'certified' WHEN c.learner IS NOT NULL THEN 'in_progress' ELSE 'not_started' END AS status
FROM unit_tree t
JOIN learner_units p ON p.tenant = t.tenant AND p.unit_id = t.unit_id
LEFT JOIN competency_certifications c
  ON c.tenant = p.tenant AND c.learner = p.learner AND c.program = $4 AND c.program_version = $5
WHERE t.tenant = $1 AND t.ancestor_id = $2 AND ($3 OR t.depth = 0)
"""
SELECT_UNIT_LEARNERS = f"""
SELECT * FROM ({_UNIT_LEARNERS}) AS l WHERE status = ANY($6::text[]) AND learner > $7 ORDER BY learner LIMIT $8
"""
COUNT_UNIT_STATUSES = f"SELECT status, count(*) AS learners FROM ({_UNIT_LEARNERS}) AS l GROUP BY status"
SELECT_IS_ROSTERED = """
SELECT EXISTS (SELECT 1 FROM roster_memberships WHERE tenant = $1 AND learner = $2 AND superseded_position IS NULL)
"""
SELECT_DESCENDANTS = """
SELECT u.unit_id, u.parent_id, u.kind, u.name FROM unit_tree t JOIN units u ON u.tenant = t.tenant AND u.unit_id = t.unit_id
WHERE t.tenant = $1 AND t.ancestor_id = $2 ORDER BY t.depth, u.unit_id
"""
SELECT_ROSTER_TENANTS = "SELECT DISTINCT tenant FROM roster_memberships WHERE superseded_position IS NULL"
SELECT_CURRENT_LEARNERS = """
SELECT DISTINCT learner FROM roster_memberships WHERE tenant = $1 AND superseded_position IS NULL ORDER BY learner
"""
SELECT_ROSTER_EVENTS = """
SELECT position, stored, tenant, payload FROM events
WHERE event_type = 'roster' AND position <= $1 ORDER BY position
"""
SELECT_ROSTER_PAYLOADS = "SELECT payload FROM events WHERE position = ANY($1::bigint[]) AND event_type = 'roster'"
SELECT_ALL_UNITS = "SELECT 'unit', tenant, unit_id, parent_id, kind, name FROM units ORDER BY tenant{c}, unit_id{c}"
SELECT_ALL_MEMBERSHIPS = """
SELECT 'membership', tenant, learner, unit_id, valid_from, valid_to, recorded_position, superseded_position
FROM roster_memberships ORDER BY tenant{c}, learner{c}, valid_from, recorded_position
"""
SELECT_ALL_HEADCOUNTS = """
SELECT 'headcount', tenant, unit_id, headcount FROM unit_headcounts WHERE headcount <> 0 ORDER BY tenant{c}, unit_id{c}
"""
TREE_COUNTS = """
SELECT t.ancestor_id AS unit_id,
       coalesce(sum(h.headcount), 0)::bigint AS headcount,
       coalesce(sum(c.certified), 0)::bigint AS certified
FROM unit_tree t
LEFT JOIN unit_headcounts h ON h.tenant = t.tenant AND h.unit_id = t.unit_id
LEFT JOIN unit_certified c ON c.tenant = t.tenant AND c.unit_id = t.unit_id
     AND c.program = $2 AND c.program_version = $3
WHERE t.tenant = $1
GROUP BY t.ancestor_id
"""
SELECT_ANCESTORS = "SELECT ancestor_id FROM unit_tree WHERE tenant = $1 AND unit_id = $2 ORDER BY depth"
SERIES_RECOMPUTE = "SELECT series_recompute()"
SET_SERIES_BULK = "SET LOCAL lrs.series_bulk = 'on'"
# A load's rows reach the statistics only when autovacuum analyses them after
# the commit.  Into a fresh or small roster the planner had none for them, and
# took "learner = ANY(the event's 1,000 learners)" (10,000 when placing) to
# match most of the table: a scan of every row, tested against the array, once
# per event and per chunk.  A 100,000-learner load into a fresh database was
# quadratic (178-199 s; single statements of the placing 15-17 s; see
# bench/roster_load.py).  ANALYZE inside the transaction samples its own rows
# too and makes the plans that depend on the table be made again; a few times
# per load, as the table grows tenfold, it costs well under a second.
ANALYZE_MEMBERSHIPS = "ANALYZE roster_memberships"
ANALYZE_PLACED = "ANALYZE learner_units"
SELECT_ALL_COUNTS = """
SELECT tenant, unit_id, program, program_version, certified FROM unit_certified
WHERE certified <> 0 ORDER BY tenant{c}, unit_id{c}, program{c}, program_version{c}
"""
