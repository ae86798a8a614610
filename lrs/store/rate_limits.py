"""Token buckets in PostgreSQL, shared by every process of the service.

One row per credential key holds the bucket (tokens as of a time).  A
process takes a *lease* of up to ``want`` tokens in one statement: the row is
refilled for the time elapsed (``rate`` tokens a second, at most ``burst``),
the lease is taken from it, and the row is locked only for that statement.
Every admitted request spends a token taken from this one bucket, so however
many processes serve a key, they admit at most ``burst + rate * t`` requests
in ``t`` seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

__all__ = ["Lease", "take_lease"]

# The bucket's tokens refilled up to the time of this statement ($2 rate, $3 burst).
_REFILLED = "LEAST($3::float8, b.tokens + GREATEST(0, extract(epoch FROM EXCLUDED.updated - b.updated)) * $2::float8)"
# Whole tokens to take ($4 = wanted); the epsilon absorbs float sums of refills landing just below 1.
_TAKEN = f"LEAST($4::integer, floor({_REFILLED} + 1e-9))::integer"
TAKE_LEASE = f"""
INSERT INTO rate_limit_buckets AS b (key, tokens, updated, granted)
SELECT $1, $3::float8 - LEAST($4::integer, floor($3::float8)), t.at, LEAST($4::integer, floor($3::float8))::integer
FROM (SELECT clock_timestamp() AS at) AS t
ON CONFLICT (key) DO UPDATE SET
    granted = {_TAKEN},
    tokens = GREATEST(0, {_REFILLED} - {_TAKEN}),
    updated = GREATEST(b.updated, EXCLUDED.updated)
RETURNING granted, tokens
"""


@dataclass(frozen=True, slots=True)
class Lease:
    granted: int
    tokens_left: float


async def take_lease(pool: asyncpg.Pool, key: str, *, rate: float, burst: float, want: int) -> Lease:
    """Take up to ``want`` tokens from ``key``'s bucket (0 when it is empty)."""
    row = await pool.fetchrow(TAKE_LEASE, key, float(rate), float(burst), int(want))
    return Lease(row["granted"], row["tokens"])
