-- Data keys of the identities named in sealed Statements (lrs/privacy,
-- docs/privacy.md).  Each key is wrapped (AES-256-GCM) by a master key kept
-- outside PostgreSQL, so this table alone opens nothing.  Erasing an
-- identity sets wrapped to NULL: every Statement sealed under that key is
-- then unreadable for good, while the log's bytes (and so its hashes and
-- anchors) stay as they were.  An identity written again after its erasure
-- gets a new generation.
CREATE TABLE learner_keys (
    tenant     text        NOT NULL,
    pseudonym  text        NOT NULL,
    generation integer     NOT NULL,
    wrapped    bytea,
    created_at timestamptz NOT NULL DEFAULT now(),
    erased_at  timestamptz,
    PRIMARY KEY (tenant, pseudonym, generation),
    CHECK ((wrapped IS NULL) = (erased_at IS NOT NULL))
);

-- At most one live key per identity.
CREATE UNIQUE INDEX learner_keys_live ON learner_keys (tenant, pseudonym) WHERE wrapped IS NOT NULL;
