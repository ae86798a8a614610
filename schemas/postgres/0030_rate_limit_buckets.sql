-- Request rate limit shared by every process of the service (lrs/store/rate_limits.py).
-- One token bucket per credential key: ``tokens`` as of ``updated``; processes
-- take tokens in small leases.  ``granted`` is what the last lease took.
-- UNLOGGED: a crash may reset buckets to full, which only allows one burst.
CREATE UNLOGGED TABLE rate_limit_buckets (
    key text PRIMARY KEY,
    tokens double precision NOT NULL,
    updated timestamptz NOT NULL,
    granted integer NOT NULL
);
