-- The unit trend series (0114_series_deltas.sql) follow the programme's
-- policy on erased learners (projections/units/erased.py), as the unit
-- totals and the point-in-time members do: a learner in
-- units_dropped_learners (LRS_ERASED_LEARNERS_IN_TOTALS=drop) counts in no
-- series, on either clock, at any moment; with =count the table stays empty
-- and the series are as before.
--
-- The per-day deltas hold the memberships and certifications of the learners
-- not dropped: the row triggers skip a dropped learner, dropping a learner
-- takes back what their rows added (a trigger on units_dropped_learners: an
-- erasure applied again inserts nothing, so takes nothing back twice), and
-- series_recompute() leaves them out.

CREATE FUNCTION series_dropped(t text, l text) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM units_dropped_learners WHERE tenant = t AND learner = l)
$$;

CREATE OR REPLACE FUNCTION series_membership_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('lrs.series_bulk', true) = 'on' THEN
        RETURN NULL;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') AND NOT series_dropped(OLD.tenant, OLD.learner) THEN
        PERFORM series_apply_membership(OLD.tenant, OLD.learner, OLD.unit_id, OLD.valid_from, OLD.valid_to,
                                        OLD.recorded_at, OLD.superseded_at, OLD.superseded_position, -1);
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') AND NOT series_dropped(NEW.tenant, NEW.learner) THEN
        PERFORM series_apply_membership(NEW.tenant, NEW.learner, NEW.unit_id, NEW.valid_from, NEW.valid_to,
                                        NEW.recorded_at, NEW.superseded_at, NEW.superseded_position, 1);
    END IF;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION series_certification_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.earned AND NOT series_dropped(OLD.tenant, OLD.learner) THEN
        PERFORM series_apply_certification(OLD.tenant, OLD.learner, OLD.program, OLD.program_version,
                                           OLD.earned_at, OLD.known_at, -1);
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') AND NEW.earned AND NOT series_dropped(NEW.tenant, NEW.learner) THEN
        PERFORM series_apply_certification(NEW.tenant, NEW.learner, NEW.program, NEW.program_version,
                                           NEW.earned_at, NEW.known_at, 1);
    END IF;
    RETURN NULL;
END $$;

-- A learner dropped (or, were a row ever deleted, counted again): every
-- membership row of theirs with the certifications it counts, -1 (or +1).
CREATE FUNCTION series_dropped_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    r record;
    who record;
    sign integer;
BEGIN
    IF current_setting('lrs.series_bulk', true) = 'on' THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'INSERT' THEN
        who := NEW;
        sign := -1;
    ELSE
        who := OLD;
        sign := 1;
    END IF;
    FOR r IN SELECT * FROM roster_memberships m WHERE m.tenant = who.tenant AND m.learner = who.learner LOOP
        PERFORM series_apply_membership(r.tenant, r.learner, r.unit_id, r.valid_from, r.valid_to,
                                        r.recorded_at, r.superseded_at, r.superseded_position, sign);
    END LOOP;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION series_attach() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    DROP TRIGGER IF EXISTS series_memberships ON roster_memberships;
    CREATE TRIGGER series_memberships AFTER INSERT OR UPDATE OR DELETE ON roster_memberships
        FOR EACH ROW EXECUTE FUNCTION series_membership_trigger();
    DROP TRIGGER IF EXISTS series_certifications ON competency_certifications;
    CREATE TRIGGER series_certifications AFTER INSERT OR UPDATE OR DELETE ON competency_certifications
        FOR EACH ROW EXECUTE FUNCTION series_certification_trigger();
    DROP TRIGGER IF EXISTS series_dropped_learners ON units_dropped_learners;
    CREATE TRIGGER series_dropped_learners AFTER INSERT OR DELETE ON units_dropped_learners
        FOR EACH ROW EXECUTE FUNCTION series_dropped_trigger();
END $$;

CREATE OR REPLACE FUNCTION series_recompute() RETURNS void LANGUAGE sql AS $$
    DELETE FROM unit_series_heads;
    DELETE FROM unit_series_certs;
    INSERT INTO unit_series_heads (tenant, ancestor_id, clock, day, heads)
    SELECT m.tenant, tree.ancestor_id, s.clock, e.day, sum(e.delta)
    FROM roster_memberships m
    CROSS JOIN LATERAL series_spans(m.valid_from, m.valid_to, m.recorded_at, m.superseded_at, m.superseded_position) s
    CROSS JOIN LATERAL (VALUES (series_day(s.starts), 1), (series_day(s.ends), -1)) AS e(day, delta)
    JOIN unit_tree tree ON tree.tenant = m.tenant AND tree.unit_id = m.unit_id
    WHERE e.day IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM units_dropped_learners d WHERE d.tenant = m.tenant AND d.learner = m.learner)
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
      AND NOT EXISTS (SELECT 1 FROM units_dropped_learners d WHERE d.tenant = m.tenant AND d.learner = m.learner)
    GROUP BY 1, 2, 3, 4, 5, 6 HAVING sum(e.delta) <> 0;
$$;

SELECT series_attach();
SELECT series_recompute();
