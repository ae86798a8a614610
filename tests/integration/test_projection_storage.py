"""How the competency projection stores learner states in PostgreSQL: the
codec's compression, HOT updates, its commits, and states of an older format."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

from lrs.store import StatementWriter
from projections.competency.codec import MAGIC, decode_state, open_state
from projections.competency.store import CompetencyProjection, digest
from projections.replay import replay
from projections.runner import ProjectionRunner
from tests.integration.competency_statements import (
    CATALOG,
    MODULES,
    PASSED,
    STATE_STORAGE,
    course_statement,
    learner_key,
    learner_state,
    log_events,
    write,
)


async def test_a_learner_state_is_stored_compressed_by_the_codec_in_its_row_and_not_again_by_postgres(
    pool: asyncpg.Pool, writer: StatementWriter
) -> None:
    await write(writer, *(course_statement(0, module, verb, n) for n, (module, verb) in enumerate(MODULES)))
    await replay(pool, CompetencyProjection(CATALOG))  # a fresh table, as replays swap in
    assert await pool.fetchval(STATE_STORAGE) == "e"
    runner = ProjectionRunner(pool, CompetencyProjection(CATALOG))
    await write(writer, *(course_statement(0, module, verb, 100 + n) for n, (module, verb) in enumerate(MODULES[:4])))
    await runner.catch_up()  # the live upsert
    state, stored = await pool.fetchrow(
        "SELECT state, pg_column_size(state) FROM competency_learners WHERE learner = $1", learner_key(0)
    )
    assert state[:4] == MAGIC  # the codec's zstd frame
    assert len(open_state(state)) > 2100  # its layout is past the default TOAST threshold
    assert len(state) < 2000  # the frame is not
    assert stored >= len(state)  # PostgreSQL did not compress it (nor point to a TOAST copy)
    assert await learner_state(pool, learner_key(0)) is not None


async def test_updating_learner_states_is_hot_when_their_pages_are_full(pool: asyncpg.Pool, writer: StatementWriter) -> None:
    """Each batch that concerns a learner rewrites its state.  With the state
    compressed and room left in each page (fillfactor), the new version goes
    in the same page and no index changes: a HOT update, pruned in the page
    instead of left to autovacuum.  (Stored whole, uncompressed, two or three
    states filled a page and hardly any update was HOT.)  Each transaction
    rewrites three of the 24 learners: one that rewrote all of them gave each
    page more new versions than its free space holds whatever the states'
    size (with format 3's smaller states, four to a page, half of a round's
    updates were HOT)."""
    learners = range(24)
    await write(writer, *(course_statement(n, module, verb, i) for n in learners
                          for i, (module, verb) in enumerate(MODULES)))
    # one connection, so that its statistics are the ones flushed below
    single = await asyncpg.create_pool(dsn=pool._connect_args[0], min_size=1, max_size=1)  # type: ignore[attr-defined]
    try:
        runner = ProjectionRunner(single, CompetencyProjection(CATALOG))
        await runner.catch_up()  # the learners' rows: inserts
        assert await single.fetchval("SELECT pg_relation_size('competency_learners')") >= 3 * 8192
        for round_ in range(3):
            # as in live apply, a transaction rewrites a few of the learners
            # (a batch of 1,000 events, 5 % of 20,000), not every row of a page
            for group in range(0, len(learners), 3):
                await write(writer, *(course_statement(n, "searching", PASSED, 200 + 10 * round_ + n)
                                      for n in learners[group:group + 3]))
                await runner.catch_up()
        async with single.acquire() as conn:
            await conn.execute("SELECT pg_stat_force_next_flush()")
            await conn.execute("SELECT 1")  # a transaction's end flushes what was forced
        stats = "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relid = 'competency_learners'::regclass"
        for _ in range(100):
            updated, hot = await pool.fetchrow(stats)
            if updated >= 3 * len(learners):
                break
            await asyncio.sleep(0.02)
    finally:
        await single.close()
    assert updated >= 3 * len(learners)
    assert hot >= 0.8 * updated, (hot, updated)


class SeesCommitSetting(CompetencyProjection):
    """Notes the transaction's synchronous_commit as each batch applies."""

    def __init__(self) -> None:
        super().__init__(CATALOG)
        self.seen: list[str] = []

    async def apply_many(self, conn: asyncpg.Connection, events: Any) -> None:
        self.seen.append(await conn.fetchval("SELECT current_setting('synchronous_commit')"))
        await super().apply_many(conn, events)


async def test_a_batch_commits_without_waiting_for_its_wal_and_leaves_the_connection_as_it_was(
    pool: asyncpg.Pool, writer: StatementWriter
) -> None:
    """A projection is derived from the log: its batch commits without
    waiting for the WAL flush (a commit lost in a crash is lost with its
    checkpoint and applied again), and only that transaction does."""
    await write(writer, *(course_statement(1, m, v, 10 * i) for i, (m, v) in enumerate(MODULES[:4])))
    projection = SeesCommitSetting()
    runner = ProjectionRunner(pool, projection)
    await runner.apply_batch((await log_events(pool))[:2])
    await runner.catch_up()
    assert projection.seen and set(projection.seen) == {"off"}
    assert await runner.checkpoint() == 4
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT current_setting('synchronous_commit')") == "on"


async def test_states_stored_in_format_2_carry_across_the_upgrade_without_a_replay(
    pool: asyncpg.Pool, writer: StatementWriter
) -> None:
    """States written before format 3 (each competency's fields stored) are
    read by live apply, digested as the same states, and rewritten in format 3
    when their learner next changes; a replay gives the same projection."""
    from projections.competency.codec import digest_bytes
    from tests.unit.test_competency_codec import format_2

    await write(writer, *(course_statement(n, m, v, 10 * i) for n in (1, 2) for i, (m, v) in enumerate(MODULES[:6])))
    await ProjectionRunner(pool, CompetencyProjection(CATALOG)).catch_up()
    live = await digest(pool)
    for row in await pool.fetch("SELECT tenant, learner, state FROM competency_learners"):
        await pool.execute("UPDATE competency_learners SET state = $3 WHERE tenant = $1 AND learner = $2",
                           row["tenant"], row["learner"], format_2(decode_state(row["state"])))
    assert await digest(pool) == live  # the same states, whichever format holds them

    await write(writer, course_statement(1, "device-security", PASSED, 500), course_statement(1, "personal-data", PASSED, 510))
    await ProjectionRunner(pool, CompetencyProjection(CATALOG)).catch_up()  # a new runner: nothing cached
    stored = {r["learner"]: r["state"] for r in await pool.fetch("SELECT learner, state FROM competency_learners")}
    assert open_state(stored[learner_key(1)])[:1] == b"\x97"  # rewritten in format 3
    assert open_state(stored[learner_key(2)])[:1] == b"\x98"  # not changed: still format 2
    state = decode_state(stored[learner_key(1)])
    assert len(state.evidence) > 6 and any(c.attainments for c in state.competencies.values())
    live = await digest(pool)
    await replay(pool, CompetencyProjection(CATALOG))
    assert await digest(pool) == live
    assert digest_bytes(stored[learner_key(2)]) == open_state(
        await pool.fetchval("SELECT state FROM competency_learners WHERE learner = $1", learner_key(2)))
