-- Which Statements carry an attachment, by its hash (lrs/store/erasure.py):
-- an erasure deletes an attachment only no other Statement refers to, and
-- asks that through this index instead of reading every Statement of the
-- tenant.  Only statement events with attachments are indexed (the
-- predicate), so ingest of the others pays one byte search, no regular
-- expression.  Stored Statements are compact, sorted JSON (lrs.eventlog), so
-- a hash appears as "sha2":"<hex>".
CREATE FUNCTION statement_attachment_hashes(body bytea) RETURNS text[]
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT ARRAY(SELECT DISTINCT m[1] FROM regexp_matches(convert_from(body, 'UTF8'), '"sha2":"([0-9a-f]+)"', 'g') AS m) $$;

CREATE INDEX events_attachment_hashes ON events USING gin (statement_attachment_hashes(payload))
    WHERE event_type = 'statement' AND position('"attachments"'::bytea IN payload) > 0;
