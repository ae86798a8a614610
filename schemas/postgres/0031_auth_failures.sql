-- Failed authentications counted by every process of the service (lrs/store/auth_failures.py).
-- One row per throttled name (a credential key or a client address), named by
-- a SHA-256 digest so any key text (long, NUL bytes) fits and no typed secret
-- is kept in clear.  ``failures`` counts within the window that began at
-- ``started``; ``max_failures`` is the limit for this kind of name; ``refused``
-- says whether the last attempt was refused (read back by the statement).
-- UNLOGGED: a crash may forget counts, which only allows one more window.
CREATE UNLOGGED TABLE auth_failures (
    name bytea PRIMARY KEY,
    failures integer NOT NULL,
    started timestamptz NOT NULL,
    max_failures integer NOT NULL,
    refused boolean NOT NULL
);
