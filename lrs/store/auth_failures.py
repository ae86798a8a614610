"""Failed authentications counted in PostgreSQL, shared by every process.

A name (a credential key, a client address) may fail ``max_failures`` times
in a window of ``window_s`` seconds that begins with its first failure; the
next attempt in that window is refused.  :func:`admit` counts one attempt for
several names in one statement, atomically per name: concurrent attempts
from any number of processes cannot slip past the limit.  It is called only
for attempts about to run the slow hash, so it writes at most once per hash,
never for a refused or cached request.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

import asyncpg

__all__ = ["Admission", "admit", "name_digest", "prune", "withdraw"]

# $1 names, $2 their limits, $3 the window in seconds.
ADMIT = """
INSERT INTO auth_failures AS f (name, failures, started, max_failures, refused)
SELECT n.name, 1, clock_timestamp(), n.max_failures, false
FROM unnest($1::bytea[], $2::integer[]) AS n(name, max_failures)
ON CONFLICT (name) DO UPDATE SET
    started = CASE WHEN f.started <= EXCLUDED.started - make_interval(secs => $3) THEN EXCLUDED.started
                   ELSE f.started END,
    refused = f.started > EXCLUDED.started - make_interval(secs => $3) AND f.failures >= EXCLUDED.max_failures,
    failures = CASE WHEN f.started <= EXCLUDED.started - make_interval(secs => $3) THEN 1
                    WHEN f.failures >= EXCLUDED.max_failures THEN f.failures
                    ELSE f.failures + 1 END,
    max_failures = EXCLUDED.max_failures
RETURNING name, refused, started,
          GREATEST(0, extract(epoch FROM started + make_interval(secs => $3) - clock_timestamp()))::float8 AS wait
"""
WITHDRAW = """
UPDATE auth_failures AS f SET failures = GREATEST(0, f.failures - 1)
FROM unnest($1::bytea[], $2::timestamptz[]) AS w(name, started)
WHERE f.name = w.name AND f.started = w.started
"""
PRUNE = "DELETE FROM auth_failures WHERE started <= clock_timestamp() - make_interval(secs => $1)"


def name_digest(kind: str, name: str) -> bytes:
    """The stored name of ``name`` of ``kind`` ("key", "address")."""
    return hashlib.sha256(f"{kind}\0{name}".encode("utf-8", "surrogatepass")).digest()


@dataclass(frozen=True, slots=True)
class Admission:
    """One attempt as counted: ``refused`` names with their seconds to wait, and
    the counted names with their window's start (to :func:`withdraw` them)."""

    refused: dict[bytes, float]
    counted: dict[bytes, datetime]


async def admit(pool: asyncpg.Pool, limits: dict[bytes, int], *, window_s: float) -> Admission:
    """Count one failure for every name in ``limits`` (name -> its limit) unless
    the name is already at its limit in its current window (then it is refused)."""
    names = list(limits)
    rows = await pool.fetch(ADMIT, names, [limits[name] for name in names], float(window_s))
    refused = {bytes(row["name"]): row["wait"] for row in rows if row["refused"]}
    counted = {bytes(row["name"]): row["started"] for row in rows if not row["refused"]}
    return Admission(refused, counted)


async def withdraw(pool: asyncpg.Pool, counted: dict[bytes, datetime]) -> None:
    """Take back the failures :func:`admit` counted (the attempt did not fail)."""
    if counted:
        names = list(counted)
        await pool.execute(WITHDRAW, names, [counted[name] for name in names])


async def prune(pool: asyncpg.Pool, *, window_s: float) -> int:
    """Delete names whose window has ended; returns how many."""
    status = await pool.execute(PRUNE, float(window_s))
    return int(status.split()[-1])
