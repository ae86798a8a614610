-- Which privacy master key this database's learner keys are wrapped with
-- (lrs/privacy/master.py, docs/privacy.md): an identifier derived from the
-- key one way (HKDF), never the key, which lives in a file outside
-- PostgreSQL.  The first process to start with sealing on records it; a
-- process started with another key file (a host that made its own) refuses
-- to start instead of sealing under keys the others cannot open.
CREATE TABLE privacy_key_id (
    singleton  boolean     PRIMARY KEY DEFAULT true CHECK (singleton),
    key_id     text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
