-- Sign-ins to the web console (lrs/console): one row per session.  The
-- browser holds a random token in an HttpOnly, SameSite=Strict cookie; only
-- its SHA-256 is stored, so a copy of this table opens no session.  The
-- session names a credential, which is read again on every request: revoking
-- the credential ends its sessions.  Rows are not events: a session is not a
-- fact about learning, and expired rows are deleted.
CREATE TABLE console_sessions (
    token_hash     bytea       PRIMARY KEY,
    credential_key text        NOT NULL,
    csrf_token     text        NOT NULL,   -- echoed by every form of this session
    created_at     timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL
);

CREATE INDEX console_sessions_expiry ON console_sessions (expires_at);
