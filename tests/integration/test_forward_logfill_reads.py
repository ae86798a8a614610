"""connectors.forward.logfill reads a batch of the log's events in the holes
of a forwarder's mark with index lookups: as few rows however far into the
log the holes are (a forwarder new to a long log reads it batch after batch,
and one caught up looks at the newest positions every time it is idle)."""

from __future__ import annotations

import json

import asyncpg
import msgspec

from connectors.forward.logfill import holes_query, read_holes
from lrs.store.event_append import append_events
from tests.integration.test_learner_keys import _scans_of

EVENTS = 3000


async def test_a_batch_of_holes_far_into_the_log_reads_no_more_rows_than_the_batch(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await append_events(conn, "default", "roster", [msgspec.json.encode({"n": n}) for n in range(EVENTS)])
    await pool.execute("ANALYZE events")
    batch = 10
    for holes in ([(1, EVENTS)], [(EVENTS - 100, EVENTS)], [(5, 5), (EVENTS - 3, EVENTS - 2), (EVENTS, EVENTS)]):
        rows = await read_holes(pool, holes, batch)
        wanted = [p for first, last in holes for p in range(first, last + 1)][:batch]
        assert [row["position"] for row in rows] == wanted
        query, args = holes_query(holes, batch)
        async with pool.acquire() as conn:
            [plan] = json.loads(await conn.fetchval("EXPLAIN (ANALYZE, FORMAT JSON) " + query, *args))
        scans = _scans_of(plan["Plan"], "events")
        assert scans
        for scan in scans:
            assert scan["Actual Rows"] * scan["Actual Loops"] <= batch, (holes, scan["Node Type"], scan["Actual Rows"])
