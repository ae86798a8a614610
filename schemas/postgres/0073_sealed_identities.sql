-- The ciphertexts of sealed identities in the v3 stored form
-- (lrs/privacy/seal.py, docs/privacy.md): a Statement carries
-- "v3.<generation>.<reference>", the reference being the first 16 bytes of
-- the ciphertext's SHA-256, and the ciphertext is kept here once for every
-- Statement that names the same identity the same way.  The log's hash
-- covers the reference and the reference commits to the ciphertext, so the
-- audit proves these bytes too.  Each ciphertext is sealed under its
-- identity's data key (learner_keys) with the tenant, pseudonym and
-- generation as associated data: this table alone opens nothing, and once
-- an erasure destroys the key its rows open nothing either.
CREATE TABLE sealed_identities (
    ref        bytea PRIMARY KEY CHECK (length(ref) = 16),
    ciphertext bytea NOT NULL
);
