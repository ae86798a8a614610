-- Requests to apply a parked event again (projection_parked), made by any
-- process (the console of a service that does not run the projection) and
-- carried out by the projection's runner that holds the projection's leader
-- lock: only that runner may apply events, as its in-memory state must see
-- every write.  A request is sent with NOTIFY lrs_projection_retry, '<name>';
-- the runner also polls, so a notification lost while it reconnects only
-- delays it.  Rows are not events: they record what operators asked for and
-- what came of it (state requested -> working -> done | failed).
CREATE TABLE projection_retry_requests (
    id           bigserial   PRIMARY KEY,
    name         text        NOT NULL,            -- the projection
    position     bigint      NOT NULL,            -- the parked event
    tenant       text        NOT NULL,
    requested_by text        NOT NULL,            -- the credential key (or oidc:<subject>)
    requested_at timestamptz NOT NULL DEFAULT now(),
    state        text        NOT NULL DEFAULT 'requested'
                 CHECK (state IN ('requested', 'working', 'done', 'failed')),
    claimed_at   timestamptz,
    finished_at  timestamptz,
    error        text                             -- failed: why (the event stays parked)
);

CREATE INDEX projection_retry_requests_open ON projection_retry_requests (name, id)
    WHERE state IN ('requested', 'working');
CREATE INDEX projection_retry_requests_tenant ON projection_retry_requests (name, tenant, id DESC);
