"""A roster load and the competency projection's batch, run at the same
time on the same learners, both commit: neither waits for a row the other
holds while holding the roster lock the other waits for (no "deadlock
detected", which the roster endpoint would answer with a 503).

The interleaving is made, not hoped for: the projection's transaction is
held just before it asks for the roster lock, a roster load runs meanwhile
as far as it can, then the projection goes on."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from typing import Any

import asyncpg

from lrs.store import StatementWriter
from projections.competency.store import CompetencyProjection
from projections.runner import ProjectionRunner
from projections.units.roster import parse_json
from projections.units.store import load_roster
from tests.integration.competency_statements import CATALOG, MODULES, course_statement, write
from tests.integration.test_projection_units import UNITS, compare_series, membership, recounted, stored_counts

NOW = datetime(2025, 6, 1, tzinfo=timezone.utc)
SINCE = NOW - timedelta(days=100)  # before the statements' timestamps (March 2025)
WAITING_ON_A_LOCK = """
SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'
"""


class Gate:
    """Holds the first request for the shared roster lock until opened."""

    def __init__(self) -> None:
        self.reached = asyncio.Event()
        self.opened = asyncio.Event()

    def connection_class(self) -> type[asyncpg.Connection]:
        gate = self

        class HeldBeforeTheRosterLock(asyncpg.Connection):  # type: ignore[misc]
            async def execute(self, query: str, *args: Any, **kwargs: Any) -> str:
                if "pg_advisory_xact_lock_shared" in query and not gate.reached.is_set():
                    gate.reached.set()
                    await gate.opened.wait()
                return await super().execute(query, *args, **kwargs)

        return HeldBeforeTheRosterLock


async def until_done_or_waiting(task: asyncio.Task[Any], pool: asyncpg.Pool) -> None:
    """Until ``task`` has finished or some backend waits for a lock (10 s at most)."""
    for _ in range(1000):
        if task.done() or await pool.fetchval(WAITING_ON_A_LOCK):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the roster load neither finished nor waited")


async def test_a_roster_load_during_a_projection_batch_that_certifies_deadlocks_neither(
    pool: asyncpg.Pool, writer: StatementWriter, database_url: str
) -> None:
    leaves = ["mic-a", "mic-a-1", "mic-b"]
    await load_roster(pool, "default", parse_json({
        "units": UNITS, "memberships": [membership(n, leaves[n % 3], SINCE) for n in range(6)],
    }), now=NOW)
    # learners 0 and 3 are certified (committed); 1 and 4 will be in the held batch
    await write(writer, *(course_statement_of(n, i) for n in (0, 3) for i in range(len(MODULES))))
    await ProjectionRunner(pool, CompetencyProjection(CATALOG)).catch_up()
    assert await stored_counts(pool)
    await write(writer, *(course_statement_of(n, i) for n in (1, 4) for i in range(len(MODULES))))

    gate = Gate()
    held_pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2, connection_class=gate.connection_class())
    try:
        batch = asyncio.create_task(ProjectionRunner(held_pool, CompetencyProjection(CATALOG)).catch_up())
        await asyncio.wait_for(gate.reached.wait(), 10)
        # the certified learners move, and are loaded again where they were
        load = asyncio.create_task(load_roster(pool, "default", parse_json({"memberships": [
            membership(0, "mic-b", SINCE), membership(3, "mic-a-1", SINCE), membership(5, "mic-b", SINCE),
        ]}), now=NOW + timedelta(days=1)))
        await until_done_or_waiting(load, pool)
        gate.opened.set()
        outcomes = await asyncio.wait_for(asyncio.gather(batch, load, return_exceptions=True), 30)
    finally:
        gate.opened.set()
        await held_pool.close()
    assert not [o for o in outcomes if isinstance(o, BaseException)], [(o, getattr(o, "detail", None)) for o in outcomes]
    counts = await stored_counts(pool)
    assert counts == await recounted(pool) and sum(counts.values()) == 4
    await compare_series(pool)



def course_statement_of(n: int, i: int) -> dict[str, Any]:
    module, verb = MODULES[i]
    return course_statement(n, module, verb, i)
