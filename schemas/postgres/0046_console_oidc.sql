-- Signing in to the console through the OIDC issuer (lrs/console/oidc_signin.py).
--
-- A session opened that way names no row of credentials: it keeps the
-- verified ID token's claims, and every request maps them to a credential
-- with the same rule as a bearer token (lrs.oidc.claims.credential_from_claims).
ALTER TABLE console_sessions ADD COLUMN oidc_claims jsonb;

-- Sign-in attempts between the redirect to the issuer and its callback: the
-- state (only its SHA-256; the browser holds it in a cookie too), the nonce
-- the ID token must carry and the PKCE verifier.  An attempt is used once
-- (deleted by the callback) and expires after ten minutes.
CREATE TABLE console_oidc_attempts (
    state_hash    bytea       PRIMARY KEY,
    nonce         text        NOT NULL,
    code_verifier text        NOT NULL,
    next_path     text        NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL
);

CREATE INDEX console_oidc_attempts_expiry ON console_oidc_attempts (expires_at);
