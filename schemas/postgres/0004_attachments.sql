-- Attachment bytes (xAPI-Data 2.4.11, Communication 1.5.2), stored once per
-- (tenant, sha2).
--
-- Content-addressed: a row is written before the statements that reference it
-- are handed to the group-commit writer, with INSERT ... ON CONFLICT DO
-- NOTHING.  A row whose statements were then refused (409, shutdown) is an
-- orphan that no GET can reach (GET only returns attachments referenced by the
-- statements it returns) and that a later upload of the same bytes reuses.
--
-- The key includes the tenant so that knowing a hash never gives another
-- tenant's bytes: a GET with attachments=true only looks in the caller's
-- tenant.
--
-- STORAGE EXTERNAL keeps large values uncompressed in TOAST, so GET can stream
-- them with substring() one slice at a time without detoasting the whole value.

CREATE TABLE attachments (
    tenant       text        NOT NULL,
    sha2         text        NOT NULL,   -- lowercase hex, as declared (SHA-224/256/384/512)
    content_type text        NOT NULL,   -- Content-Type of the part that brought the bytes
    length       bigint      NOT NULL,
    content      bytea       NOT NULL,
    created      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, sha2),
    CHECK (length = octet_length(content)),
    CHECK (sha2 ~ '^[0-9a-f]+$')
);

ALTER TABLE attachments ALTER COLUMN content SET STORAGE EXTERNAL;
