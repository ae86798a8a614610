"""A learner's competency rows that a batch changes are updated in place.

Live apply stages a batch's new and changed ``competency_states`` rows
(projections/competency/store.py, WRITE_STAGED_ROWS): a row the learner had
is updated (HOT where its status stays: fillfactor, migration 0118), not
deleted and inserted again, and the rows are those a replay writes.
"""

from __future__ import annotations

import asyncpg

from lrs.store import StatementWriter
from lrs.store.log_reader import read_events_after
from projections.checkpoints import CheckpointStore
from projections.competency.store import CompetencyProjection, digest
from projections.events import log_events
from projections.replay import replay
from tests.integration.test_projection_runner import CATALOG, FAILED, PASSED, course_statement, write

STATE_ROWS = "SELECT * FROM competency_states ORDER BY tenant, learner, competency"
COUNTS = ("SELECT n_tup_ins, n_tup_upd, n_tup_del FROM pg_stat_xact_user_tables "
          "WHERE relname = 'competency_states' AND schemaname = 'public'")


async def _apply(pool: asyncpg.Pool, projection: CompetencyProjection, after: int) -> asyncpg.Record:
    """Apply the log's events after ``after`` in one transaction; the
    competency_states rows inserted, updated and deleted by it."""
    checkpoints = CheckpointStore(projection)
    async with pool.acquire() as conn, conn.transaction():
        checkpoint = await checkpoints.lock(conn)
        projection.begin(checkpoint)
        events = log_events(await read_events_after(conn, after, 100))
        await projection.apply_many(conn, events)
        await checkpoints.advance(conn, events[-1].position)
        counts = await conn.fetchrow(COUNTS)
    projection.committed(events[-1].position)
    return counts


async def test_a_changed_competency_row_is_updated_not_deleted_and_inserted_again(
    pool: asyncpg.Pool, writer: StatementWriter
) -> None:
    projection = CompetencyProjection(CATALOG)
    await write(writer, course_statement(1, "searching", FAILED, 0, 0.3), course_statement(2, "searching", PASSED, 0))
    first = await _apply(pool, projection, 0)
    assert first["n_tup_ins"] > 0 and first["n_tup_upd"] == 0 and first["n_tup_del"] == 0
    # the same module passed: learner 1's rows of its competencies change (count, scores, status), and
    # those of the levels it now reaches are new
    await write(writer, course_statement(1, "searching", PASSED, 5, 0.95))
    second = await _apply(pool, projection, 2)
    assert second["n_tup_upd"] > 0 and second["n_tup_del"] == 0, second
    live_rows, live_digest = await pool.fetch(STATE_ROWS), await digest(pool)
    await replay(pool, CompetencyProjection(CATALOG))
    assert await pool.fetch(STATE_ROWS) == live_rows
    assert await digest(pool) == live_digest
