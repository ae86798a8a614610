-- Series of headcount and certified per unit and day, kept as deltas so that
-- a series of any length over a unit with its descendants sums a few hundred
-- rows (projections/competency/series.py).  For every ancestor of a
-- membership's unit (unit_tree) and for each clock, +1 where an interval in
-- which a learner counts starts and -1 where it ends, by UTC day:
--   achieved: current memberships (valid time), certifications by earned_at;
--   known:    every row while it was both valid and known (recorded_at ..
--             superseded_at), certifications by known_at.
-- Kept by triggers on roster_memberships and competency_certifications, and
-- recomputed whole by series_recompute() after a replay or a change of units.

CREATE TABLE unit_series_heads (
    tenant      text   NOT NULL,
    ancestor_id text   NOT NULL,
    clock       text   NOT NULL,
    day         date   NOT NULL,
    heads       bigint NOT NULL,
    PRIMARY KEY (tenant, ancestor_id, clock, day)
);

CREATE TABLE unit_series_certs (
    tenant          text   NOT NULL,
    ancestor_id     text   NOT NULL,
    program         text   NOT NULL,
    program_version text   NOT NULL,
    clock           text   NOT NULL,
    day             date   NOT NULL,
    certs           bigint NOT NULL,
    PRIMARY KEY (tenant, ancestor_id, program, program_version, clock, day)
);

-- The day an instant falls on (UTC).
CREATE FUNCTION series_day(at timestamptz) RETURNS date
LANGUAGE sql IMMUTABLE AS $$ SELECT (at AT TIME ZONE 'UTC')::date $$;

-- Where a membership row counts, per clock: (clock, starts, ends); no row
-- when it never counts on that clock.
CREATE FUNCTION series_spans(valid_from timestamptz, valid_to timestamptz, recorded_at timestamptz,
                             superseded_at timestamptz, superseded_position bigint)
RETURNS TABLE (clock text, starts timestamptz, ends timestamptz)
LANGUAGE sql IMMUTABLE AS $$
    SELECT 'achieved', valid_from, valid_to WHERE superseded_position IS NULL
    UNION ALL
    SELECT 'known', greatest(valid_from, recorded_at), least(valid_to, superseded_at)
    WHERE least(valid_to, superseded_at) IS NULL OR least(valid_to, superseded_at) > greatest(valid_from, recorded_at)
$$;

-- The deltas of one membership row (sign +1 / -1): heads, and certifications
-- of the learner's earned certifications.
CREATE FUNCTION series_apply_membership(t text, l text, u text, vf timestamptz, vt timestamptz, ra timestamptz,
                                        sa timestamptz, sp bigint, sign integer)
RETURNS void LANGUAGE sql AS $$
    INSERT INTO unit_series_heads AS d (tenant, ancestor_id, clock, day, heads)
    SELECT t, tree.ancestor_id, s.clock, e.day, sum(e.delta) * sign
    FROM series_spans(vf, vt, ra, sa, sp) s
    CROSS JOIN LATERAL (VALUES (series_day(s.starts), 1), (series_day(s.ends), -1)) AS e(day, delta)
    JOIN unit_tree tree ON tree.tenant = t AND tree.unit_id = u
    WHERE e.day IS NOT NULL
    GROUP BY 1, 2, 3, 4
    ON CONFLICT (tenant, ancestor_id, clock, day) DO UPDATE SET heads = d.heads + EXCLUDED.heads;
    INSERT INTO unit_series_certs AS d (tenant, ancestor_id, program, program_version, clock, day, certs)
    SELECT t, tree.ancestor_id, c.program, c.program_version, s.clock, e.day, sum(e.delta) * sign
    FROM series_spans(vf, vt, ra, sa, sp) s
    JOIN competency_certifications c ON c.tenant = t AND c.learner = l AND c.earned
    CROSS JOIN LATERAL (SELECT greatest(s.starts, CASE s.clock WHEN 'known' THEN c.known_at ELSE c.earned_at END) AS since) k
    CROSS JOIN LATERAL (VALUES (series_day(k.since), 1), (series_day(s.ends), -1)) AS e(day, delta)
    JOIN unit_tree tree ON tree.tenant = t AND tree.unit_id = u
    WHERE e.day IS NOT NULL AND (s.ends IS NULL OR k.since < s.ends)
    GROUP BY 1, 2, 3, 4, 5, 6
    ON CONFLICT (tenant, ancestor_id, program, program_version, clock, day) DO UPDATE SET certs = d.certs + EXCLUDED.certs;
$$;

-- The deltas of one earned certification (sign +1 / -1) over the learner's memberships.
CREATE FUNCTION series_apply_certification(t text, l text, p text, v text, earned_at timestamptz,
                                           known_at timestamptz, sign integer)
RETURNS void LANGUAGE sql AS $$
    INSERT INTO unit_series_certs AS d (tenant, ancestor_id, program, program_version, clock, day, certs)
    SELECT t, tree.ancestor_id, p, v, s.clock, e.day, sum(e.delta) * sign
    FROM roster_memberships m
    CROSS JOIN LATERAL series_spans(m.valid_from, m.valid_to, m.recorded_at, m.superseded_at, m.superseded_position) s
    CROSS JOIN LATERAL (SELECT greatest(s.starts, CASE s.clock WHEN 'known' THEN known_at ELSE earned_at END) AS since) k
    CROSS JOIN LATERAL (VALUES (series_day(k.since), 1), (series_day(s.ends), -1)) AS e(day, delta)
    JOIN unit_tree tree ON tree.tenant = t AND tree.unit_id = m.unit_id
    WHERE m.tenant = t AND m.learner = l AND e.day IS NOT NULL AND (s.ends IS NULL OR k.since < s.ends)
    GROUP BY 1, 2, 3, 4, 5, 6
    ON CONFLICT (tenant, ancestor_id, program, program_version, clock, day) DO UPDATE SET certs = d.certs + EXCLUDED.certs;
$$;

-- A large roster load sets lrs.series_bulk for its transaction and recomputes
-- once at the end instead of row by row.
CREATE FUNCTION series_membership_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('lrs.series_bulk', true) = 'on' THEN
        RETURN NULL;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM series_apply_membership(OLD.tenant, OLD.learner, OLD.unit_id, OLD.valid_from, OLD.valid_to,
                                        OLD.recorded_at, OLD.superseded_at, OLD.superseded_position, -1);
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN
        PERFORM series_apply_membership(NEW.tenant, NEW.learner, NEW.unit_id, NEW.valid_from, NEW.valid_to,
                                        NEW.recorded_at, NEW.superseded_at, NEW.superseded_position, 1);
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION series_certification_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.earned THEN
        PERFORM series_apply_certification(OLD.tenant, OLD.learner, OLD.program, OLD.program_version,
                                           OLD.earned_at, OLD.known_at, -1);
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') AND NEW.earned THEN
        PERFORM series_apply_certification(NEW.tenant, NEW.learner, NEW.program, NEW.program_version,
                                           NEW.earned_at, NEW.known_at, 1);
    END IF;
    RETURN NULL;
END $$;

-- (Re)attach the triggers: a replay swaps in new tables, which have none.
CREATE FUNCTION series_attach() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    DROP TRIGGER IF EXISTS series_memberships ON roster_memberships;
    CREATE TRIGGER series_memberships AFTER INSERT OR UPDATE OR DELETE ON roster_memberships
        FOR EACH ROW EXECUTE FUNCTION series_membership_trigger();
    DROP TRIGGER IF EXISTS series_certifications ON competency_certifications;
    CREATE TRIGGER series_certifications AFTER INSERT OR UPDATE OR DELETE ON competency_certifications
        FOR EACH ROW EXECUTE FUNCTION series_certification_trigger();
END $$;

-- Everything again from the memberships and certifications.
CREATE FUNCTION series_recompute() RETURNS void LANGUAGE sql AS $$
    DELETE FROM unit_series_heads;
    DELETE FROM unit_series_certs;
    INSERT INTO unit_series_heads (tenant, ancestor_id, clock, day, heads)
    SELECT m.tenant, tree.ancestor_id, s.clock, e.day, sum(e.delta)
    FROM roster_memberships m
    CROSS JOIN LATERAL series_spans(m.valid_from, m.valid_to, m.recorded_at, m.superseded_at, m.superseded_position) s
    CROSS JOIN LATERAL (VALUES (series_day(s.starts), 1), (series_day(s.ends), -1)) AS e(day, delta)
    JOIN unit_tree tree ON tree.tenant = m.tenant AND tree.unit_id = m.unit_id
    WHERE e.day IS NOT NULL
    GROUP BY 1, 2, 3, 4 HAVING sum(e.delta) <> 0;
    INSERT INTO unit_series_certs (tenant, ancestor_id, program, program_version, clock, day, certs)
    SELECT m.tenant, tree.ancestor_id, c.program, c.program_version, s.clock, e.day, sum(e.delta)
    FROM roster_memberships m
    JOIN competency_certifications c ON c.tenant = m.tenant AND c.learner = m.learner AND c.earned
    CROSS JOIN LATERAL series_spans(m.valid_from, m.valid_to, m.recorded_at, m.superseded_at, m.superseded_position) s
    CROSS JOIN LATERAL (SELECT greatest(s.starts, CASE s.clock WHEN 'known' THEN c.known_at ELSE c.earned_at END) AS since) k
    CROSS JOIN LATERAL (VALUES (series_day(k.since), 1), (series_day(s.ends), -1)) AS e(day, delta)
    JOIN unit_tree tree ON tree.tenant = m.tenant AND tree.unit_id = m.unit_id
    WHERE e.day IS NOT NULL AND (s.ends IS NULL OR k.since < s.ends)
    GROUP BY 1, 2, 3, 4, 5, 6 HAVING sum(e.delta) <> 0;
$$;

SELECT series_attach();
SELECT series_recompute();
