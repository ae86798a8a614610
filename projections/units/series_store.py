"""Headcount and certified counts of a unit at many moments: the series
behind GET /competency/units/{unit}/series and the achieved-clock ``as_of``.

Two ways, which a test holds equal: sum the membership and certification
intervals of the unit (:func:`series_counts`, any moments), or sum the
per-day deltas that triggers keep for the unit with its descendants
(:func:`series_counts_daily`, period ends at midnight UTC; 0114_series_deltas.sql).

Both leave out the learners the policy on erased learners drops
(``LRS_ERASED_LEARNERS_IN_TOTALS=drop``, erased.py; 0137_series_without_dropped.sql)
at every moment, as the unit totals and the point-in-time members do: the
series at "now" is the summary's headcount and certified count.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import AsyncIterator, Sequence

import asyncpg

__all__ = ["series_counts", "series_counts_daily", "recompute_series", "series_rows"]

# Headcount and certified count of a unit (and below it) at many moments at
# once: every membership is an interval in which its learner counts, every
# earned certification one in which it counts as certified; their starts
# (+1) and ends (-1) are summed per bucket of the moments ($6, each + 1 µs,
# ascending), and the caller adds the buckets up.  $7 chooses the clock:
# 'achieved' (the current roster, valid time; certifications by earned_at)
# or 'known' (every row while it was both valid and known; certifications by
# known_at).  A learner the policy on erased learners drops
# (units_dropped_learners, erased.py) counts at no moment, on either clock.
SERIES_EVENTS = """
WITH m AS (
    SELECT m.learner,
           CASE WHEN $7 = 'known' THEN greatest(m.valid_from, m.recorded_at) ELSE m.valid_from END AS starts,
           CASE WHEN $7 = 'known' THEN least(m.valid_to, m.superseded_at) ELSE m.valid_to END AS ends
    FROM unit_tree t
    JOIN roster_memberships m ON m.tenant = t.tenant AND m.unit_id = t.unit_id
    WHERE t.tenant = $1 AND t.ancestor_id = $2 AND ($3 OR t.depth = 0)
      AND ($7 = 'known' OR m.superseded_position IS NULL)
      AND NOT EXISTS (SELECT 1 FROM units_dropped_learners d WHERE d.tenant = m.tenant AND d.learner = m.learner)
), live AS (
    SELECT * FROM m WHERE ends IS NULL OR ends > starts
), c AS (
    SELECT greatest(live.starts, CASE WHEN $7 = 'known' THEN x.known_at ELSE x.earned_at END) AS since, live.ends
    FROM live JOIN competency_certifications x
      ON x.tenant = $1 AND x.learner = live.learner AND x.program = $4 AND x.program_version = $5 AND x.earned
), events AS (
    SELECT starts AS at, 1 AS heads, 0 AS certs FROM live
    UNION ALL SELECT ends, -1, 0 FROM live WHERE ends IS NOT NULL
    UNION ALL SELECT since, 0, 1 FROM c WHERE ends IS NULL OR since < ends
    UNION ALL SELECT ends, 0, -1 FROM c WHERE ends IS NOT NULL AND since < ends
)
SELECT width_bucket(at, $6::timestamptz[]) AS bucket, sum(heads)::bigint AS heads, sum(certs)::bigint AS certs
FROM events GROUP BY 1
"""
# The same from the per-day deltas of the unit with its descendants
# (0114_series_deltas.sql): a day counts at the points whose period ends after it.
SERIES_HEADS = """
SELECT width_bucket(day, $4::date[]) AS bucket, sum(heads)::bigint AS total FROM unit_series_heads
WHERE tenant = $1 AND ancestor_id = $2 AND clock = $3 GROUP BY 1
"""
SERIES_CERTS = """
SELECT width_bucket(day, $4::date[]) AS bucket, sum(certs)::bigint AS total FROM unit_series_certs
WHERE tenant = $1 AND ancestor_id = $2 AND clock = $3 AND program = $5 AND program_version = $6 GROUP BY 1
"""
# Every non-zero per-day delta in key order, for digests (a delta the
# triggers brought back to zero stays as a row; a recount leaves none).
SELECT_ALL_SERIES = [
    "SELECT 'series_heads', tenant, ancestor_id, clock, day, heads FROM unit_series_heads WHERE heads <> 0"
    " ORDER BY tenant{c}, ancestor_id{c}, clock{c}, day",
    "SELECT 'series_certs', tenant, ancestor_id, program, program_version, clock, day, certs FROM unit_series_certs"
    " WHERE certs <> 0 ORDER BY tenant{c}, ancestor_id{c}, program{c}, program_version{c}, clock{c}, day",
]
SERIES_ATTACH_AND_RECOMPUTE = "SELECT series_attach(); SELECT series_recompute();"
SERIES_RECOMPUTE = "SELECT series_recompute()"


async def series_counts(
    conn: asyncpg.Connection, tenant: str, unit_id: str, program: str, version: str, descendants: bool,
    moments: Sequence[datetime], clock: str,
) -> list[tuple[int, int]]:
    """(headcount, certified) of the unit at each of ``moments`` (ascending) on ``clock``."""
    thresholds = [m + timedelta(microseconds=1) for m in moments]  # an event at the moment counts at it
    rows = await conn.fetch(SERIES_EVENTS, tenant, unit_id, descendants, program, version, thresholds, clock)
    heads = [0] * (len(moments) + 1)
    certs = [0] * (len(moments) + 1)
    for r in rows:
        heads[r["bucket"]] += r["heads"]
        certs[r["bucket"]] += r["certs"]
    found, h, c = [], 0, 0
    for k in range(len(moments)):
        h += heads[k]
        c += certs[k]
        found.append((h, c))
    return found


async def series_counts_daily(
    conn: asyncpg.Connection, tenant: str, unit_id: str, program: str, version: str, ends: Sequence[date], clock: str,
) -> list[tuple[int, int]]:
    """(headcount, certified) of the unit with its descendants at the end of
    each period whose exclusive end day is in ``ends`` (ascending), from the
    per-day deltas: a few hundred rows whatever the number of learners."""
    heads = [0] * (len(ends) + 1)
    certs = [0] * (len(ends) + 1)
    for r in await conn.fetch(SERIES_HEADS, tenant, unit_id, clock, list(ends)):
        heads[r["bucket"]] += r["total"]
    for r in await conn.fetch(SERIES_CERTS, tenant, unit_id, clock, list(ends), program, version):
        certs[r["bucket"]] += r["total"]
    found, h, c = [], 0, 0
    for k in range(len(ends)):
        h += heads[k]
        c += certs[k]
        found.append((h, c))
    return found


async def recompute_series(conn: asyncpg.Connection, attach: bool = False) -> None:
    """Count the per-day deltas again from the memberships and certifications
    (after a replay swapped new tables in, with ``attach``: their triggers too)."""
    await conn.execute(SERIES_ATTACH_AND_RECOMPUTE if attach else SERIES_RECOMPUTE)


async def series_rows(conn: asyncpg.Connection, order: str) -> AsyncIterator[tuple[bytes, ...]]:
    """The per-day deltas (non-zero, in key order) as text, for digests: what
    the triggers kept live and what a replay recounted must agree; ``order``
    follows each text key (projections/byte_order.py)."""
    for query in SELECT_ALL_SERIES:
        async for row in conn.cursor(query.format(c=order), prefetch=2000):
            yield tuple(str(v).encode() for v in row.values())
