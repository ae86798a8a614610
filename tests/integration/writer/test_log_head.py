"""The group-commit writer against a real PostgreSQL: the log's head, taken
by concurrent writers and groups, read by a tailing reader, its chain checked."""

from __future__ import annotations

import asyncio
import itertools
import random
import time

import asyncpg
import pytest

from lrs.eventlog import verify_chain
from lrs.store import StatementWriter, create_pool
from lrs.store.log_reader import iter_events, read_events_after
from lrs.xapi.errors import ConflictError
from tests.integration.writer.sessions import lock_waiters, until
from tests.integration.writer.statements import prepared, statement


async def test_concurrent_writers_and_a_tailing_reader_see_every_position_once(migrated_url: str) -> None:
    # Two writers on separate pools stand in for two processes.
    pools = [await create_pool(migrated_url, min_size=1, max_size=3) for _ in range(2)]
    writers = [StatementWriter(p, wait_ms=1.0, max_statements=200) for p in pools]
    for w in writers:
        await w.start()
    rng = random.Random(7)
    plan = [[rng.randint(1, 20) for _ in range(15)] for _ in range(8)]
    total = sum(map(sum, plan))
    done = asyncio.Event()

    async def produce(worker: int) -> None:
        writer = writers[worker % 2]
        for size in plan[worker]:
            await writer.append(f"tenant-{worker % 3}", prepared(*(statement() for _ in range(size))))

    seen: list[int] = []

    async def tail() -> None:
        async with pools[0].acquire() as conn:
            last = 0
            while True:
                finished = done.is_set()
                batch = await read_events_after(conn, last, 37)
                for record in batch:
                    assert record.position == last + 1, f"gap after {last}"
                    seen.append(record.position)
                    last = record.position
                if finished and not batch:
                    return
                if not batch:
                    await asyncio.sleep(0.002)

    try:
        tailer = asyncio.create_task(tail())
        await asyncio.gather(*(produce(i) for i in range(8)))
        done.set()
        await tailer
    finally:
        for w in writers:
            await w.close()
        for p in pools:
            await p.close()
    assert seen == list(range(1, total + 1))
    assert sum(w.groups_committed for w in writers) < 8 * 15  # requests did share transactions
    pool = await create_pool(migrated_url, min_size=1, max_size=1)
    try:
        records = [r async for r in iter_events(pool, batch_size=100)]
        assert verify_chain(records) is None
        stored = [r.stored for r in records]
        assert all(a < b for a, b in itertools.pairwise(stored))
    finally:
        await pool.close()


async def test_tampering_is_found_at_its_position(writer: StatementWriter, pool: asyncpg.Pool) -> None:
    for _ in range(3):
        await writer.append("default", prepared(statement(), statement()))
    async with pool.acquire() as conn:
        with pytest.raises(asyncpg.PostgresError, match="append-only"):
            await conn.execute("UPDATE events SET tenant = 'x' WHERE position = 1")
        with pytest.raises(asyncpg.PostgresError, match="append-only"):
            await conn.execute("DELETE FROM events WHERE position = 1")
        with pytest.raises(asyncpg.PostgresError, match="append-only"):
            await conn.execute("TRUNCATE events")
        records = await read_events_after(conn, 0, 100)
        assert verify_chain(records) is None
        await conn.execute("ALTER TABLE events DISABLE TRIGGER events_append_only")
        await conn.execute("UPDATE events SET payload = payload || ' '::bytea WHERE position = 4")
        await conn.execute("ALTER TABLE events ENABLE TRIGGER events_append_only")
        assert verify_chain(await read_events_after(conn, 0, 100)) == 4


async def test_large_groups_of_two_writers_see_each_others_commits(pool: asyncpg.Pool) -> None:
    # Groups this large look up their ids before the head lock; a statement the
    # other writer commits in between must still count as stored.
    first, second = StatementWriter(pool, wait_ms=0.0), StatementWriter(pool, wait_ms=0.0)
    await first.start()
    await second.start()
    try:
        for _ in range(5):
            bodies = [statement() for _ in range(80)]
            same = prepared(*bodies)
            changed = dict(bodies[5], object={"id": "http://example.com/other"})
            rival = prepared(*bodies[:5], changed, *bodies[6:])
            outcomes = await asyncio.gather(
                first.append("default", same), second.append("default", same),
                second.append("default", rival), return_exceptions=True,
            )
            results = [o for o in outcomes if not isinstance(o, BaseException)]
            errors = [o for o in outcomes if isinstance(o, BaseException)]
            assert all(isinstance(e, ConflictError) for e in errors) and len(errors) >= 1
            inserted = [r.inserted for rs in results for r in rs]
            assert inserted.count(True) == 80  # each id stored exactly once
            async with pool.acquire() as conn:
                stored = await conn.fetchval(
                    "SELECT count(*) FROM events WHERE statement_id = ANY($1::uuid[])",
                    [s.statement_id for s in same],
                )
            assert stored == 80
        events = [e async for e in iter_events(pool)]
        assert verify_chain(events) is None
        assert [e.position for e in events] == list(range(1, len(events) + 1))
    finally:
        await first.close()
        await second.close()


async def test_the_log_head_lock_is_timed_from_for_update_to_commit(writer: StatementWriter, pool: asyncpg.Pool) -> None:
    writer.keep_head_lock_holds = True
    # While another session holds the head row, the writer waits for it: the
    # wait is not part of the writer's hold.
    async with pool.acquire() as blocker:
        transaction = blocker.transaction()
        await transaction.start()
        await blocker.fetchrow("SELECT position FROM log_head WHERE singleton FOR UPDATE")
        append = asyncio.create_task(writer.append("default", prepared(statement())))
        await until(lambda: lock_waiters(pool), 1)  # the writer waits for the head from here
        await asyncio.sleep(0.5)
        assert not append.done()
        released_at = time.perf_counter()  # the writer's clock: it takes the head after this
        await transaction.rollback()
    await append
    answered_at = started_at = time.perf_counter()
    await writer.append("default", prepared(statement(), statement()))
    finished_at = time.perf_counter()
    holds = writer.head_lock_holds
    assert len(holds) == writer.groups_committed == 2
    # Bounds from the test's own clock, not a figure a loaded machine may exceed:
    # the first hold began after the release and ended before the answer; one
    # counting the wait would be 0.5 s longer than that.  The second had no wait.
    assert 0 < holds[0] <= answered_at - released_at, (holds, answered_at - released_at)
    assert 0 < holds[1] <= finished_at - started_at, (holds, finished_at - started_at)
    assert writer.head_lock_seconds == pytest.approx(sum(holds))


@pytest.mark.parametrize("rival_changes_it", [False, True])
async def test_small_groups_see_what_was_committed_while_they_waited_for_the_head(
    pool: asyncpg.Pool, rival_changes_it: bool
) -> None:
    # Two writers wait for the head with the same statement id, each having
    # started its group before the other committed; whichever commits second
    # must still see the first one's statement.
    first, second = StatementWriter(pool, wait_ms=0.0), StatementWriter(pool, wait_ms=0.0)
    await first.start()
    await second.start()
    try:
        body = statement()
        rival = dict(body, object={"id": "http://example.com/other"}) if rival_changes_it else body
        async with pool.acquire() as blocker:
            transaction = blocker.transaction()
            await transaction.start()
            await blocker.fetchrow("SELECT position FROM log_head WHERE singleton FOR UPDATE")
            appends = [
                asyncio.create_task(first.append("default", prepared(body))),
                asyncio.create_task(second.append("default", prepared(rival))),
            ]
            await until(lambda: lock_waiters(pool), 2)
            assert await lock_waiters(pool) == 2  # both snapshots predate the other's commit
            await transaction.rollback()
        outcomes = await asyncio.gather(*appends, return_exceptions=True)
        if rival_changes_it:
            assert sorted(type(o).__name__ for o in outcomes) == ["ConflictError", "list"]
        else:
            assert sorted(r.inserted for o in outcomes for r in o) == [False, True]  # type: ignore[union-attr]
        assert await pool.fetchval("SELECT count(*) FROM events") == 1
        assert await pool.fetchval("SELECT position FROM log_head WHERE singleton") == 1
    finally:
        await first.close()
        await second.close()
