"""The group-commit writer against a real PostgreSQL."""

from __future__ import annotations

import asyncio
import inspect
import itertools
import json
import random
import time
import uuid
from typing import Any, AsyncIterator

import asyncpg
import pytest

from lrs.eventlog import verify_chain
from lrs.ingest.model import PreparedStatement
from lrs.ingest.prepare import prepare_statements
from lrs.store import StatementWriter, WriterClosedError, create_pool
from lrs.store.availability import storage_unavailable
from lrs.store.kept_connection import alive
from lrs.store.writer import WriterFailedError
from lrs.service import migrate
from lrs.store.log_reader import iter_events, last_position, read_events_after
from lrs.store.reader import get_statement
from lrs.xapi.errors import ConflictError, XapiError
from lrs.xapi.identity import authority_key
from tests.statements import new_id
from tests.statements import statement as shared_statement
from lrs.payload_codec import open_payload

AUTHORITY = {"objectType": "Agent", "mbox": "mailto:authority@example.com"}
VOIDED = "http://adlnet.gov/expapi/verbs/voided"


def statement(activity: str = "http://example.com/a", **extra: Any) -> dict[str, Any]:
    fields = {"verb": "http://example.com/verbs/did", **extra}
    return shared_statement(statement_id=new_id(), mbox="mailto:learner@example.com", activity=activity, **fields)


def voiding(target: uuid.UUID | str) -> dict[str, Any]:
    return statement(verb={"id": VOIDED}, object={"objectType": "StatementRef", "id": str(target)})


def prepared(*bodies: dict[str, Any]) -> list[PreparedStatement]:
    return prepare_statements(list(bodies), version="1.0.3", authority=AUTHORITY, new_id=uuid.uuid4)


@pytest.fixture
async def migrated_url(database_url: str) -> str:
    await migrate(database_url)
    return database_url


@pytest.fixture
async def pool(migrated_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(migrated_url, min_size=1, max_size=4)
    yield pool
    await pool.close()


@pytest.fixture
async def writer(pool: asyncpg.Pool) -> AsyncIterator[StatementWriter]:
    writer = StatementWriter(pool, wait_ms=1.0)
    await writer.start()
    yield writer
    await writer.close()


async def test_appends_and_reads_back(writer: StatementWriter, pool: asyncpg.Pool) -> None:
    batch = prepared(statement(), statement())
    results = await writer.append("default", batch)
    assert [r.statement_id for r in results] == [s.statement_id for s in batch]
    assert all(r.inserted for r in results)
    assert [r.position for r in results] == [1, 2]
    assert writer.last_position == 2 == await last_position(pool)
    body = await get_statement(pool, "default", batch[0].statement_id, voided=False)
    assert body is not None and b'"stored":"' in body
    assert await get_statement(pool, "other-tenant", batch[0].statement_id, voided=False) is None


async def test_equivalent_duplicate_is_not_inserted(writer: StatementWriter, pool: asyncpg.Pool) -> None:
    body = statement()
    first = await writer.append("default", prepared(body))
    again = await writer.append("default", prepared(dict(body, timestamp="2020-01-01T00:00:00Z")))
    assert first[0].inserted and not again[0].inserted
    assert again[0].stored == first[0].stored and again[0].position == first[0].position
    assert await last_position(pool) == 1


async def test_conflict_in_a_group_leaves_the_other_requests_alone(pool: asyncpg.Pool) -> None:
    # A long gathering window puts both requests in one transaction.
    writer = StatementWriter(pool, wait_ms=300.0)
    await writer.start()
    try:
        stored = statement()
        await writer.append("default", prepared(stored))
        groups_before = writer.groups_committed
        clash = dict(stored, object={"id": "http://example.com/different"})
        loser_new, winner = prepared(statement()), prepared(statement(), statement())
        outcome = await asyncio.gather(
            writer.append("default", loser_new + prepared(clash)),
            writer.append("default", winner),
            return_exceptions=True,
        )
        assert isinstance(outcome[0], ConflictError) and outcome[0].status == 409
        assert [r.inserted for r in outcome[1]] == [True, True]  # type: ignore[union-attr]
        assert writer.groups_committed == groups_before + 1  # one shared transaction
        assert await get_statement(pool, "default", loser_new[0].statement_id, voided=False) is None
        for s in winner:
            assert await get_statement(pool, "default", s.statement_id, voided=False) is not None
    finally:
        await writer.close()


async def test_rows_keep_awkward_text_nulls_and_the_event_they_belong_to(pool: asyncpg.Pool) -> None:
    # One group of three tenants: quotes, backslashes, commas, braces and the
    # word NULL in tenants, verbs and filter keys must come back as sent, and
    # each read-model row must sit at its own event, with that event's stored time.
    writer = StatementWriter(pool, wait_ms=200.0)
    await writer.start()
    try:
        tenants = ['a "quoted", {braced} \\ tenant', "NULL", "ünïcødé tenant"]
        bodies = [
            statement(verb={"id": "http://example.com/verbs/a,b{c}"}, context={"registration": str(uuid.uuid4())}),
            statement(actor={"mbox": "mailto:o'neil,{x}@example.com"}),
            voiding(uuid.uuid4()),
        ]
        batches = [prepared(*bodies) for _ in tenants]  # same ids in each tenant
        await asyncio.gather(*(writer.append(t, b) for t, b in zip(tenants, batches)))
        assert writer.groups_committed == 1
    finally:
        await writer.close()
    rows = await pool.fetch(
        "SELECT s.tenant, s.statement_id, s.position, s.stored, s.verb_key, s.authority_key, s.registration,"
        " s.voids, s.statement_ref, e.tenant AS event_tenant, e.statement_id AS event_statement, e.stored AS"
        " event_stored, e.payload FROM statements s JOIN events e USING (position) ORDER BY position"
    )
    assert [r["position"] for r in rows] == list(range(1, 10))
    expected = [(t, s) for t, batch in zip(tenants, batches) for s in batch]
    for row, (tenant, prepared_statement) in zip(rows, expected):
        assert (row["tenant"], row["event_tenant"]) == (tenant, tenant)
        assert row["statement_id"] == row["event_statement"] == prepared_statement.statement_id
        assert row["verb_key"] == await pool.fetchval(
            "SELECT statement_key($1, 'V:' || $2)", tenant, prepared_statement.verb_id)
        assert row["authority_key"] == await pool.fetchval(
            "SELECT statement_key($1, 'U:' || $2)", tenant, authority_key(prepared_statement.body["authority"]))
        assert row["registration"] == prepared_statement.registration
        assert row["voids"] == prepared_statement.voids
        assert row["statement_ref"] == prepared_statement.statement_ref
        assert await pool.fetchval(
            "SELECT count(*) FROM statement_keys WHERE key = statement_key($1, $2) AND position = $3",
            tenant, "A:" + prepared_statement.actor_keys[0], row["position"]) == 1
        payload = json.loads(open_payload(row["payload"]))
        assert payload["id"] == str(prepared_statement.statement_id)
        assert row["stored"] == row["event_stored"]
        assert payload["stored"] == row["stored"].strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert [r["registration"] is None for r in rows] == [False, True, True] * 3
    assert verify_chain(await read_events_after(pool, 0, 100)) is None


async def test_one_tenant_group_of_two_senders_keeps_each_senders_authority(pool: asyncpg.Pool) -> None:
    # One tenant (sent once), two authorities (sent per row), no registration,
    # voiding or StatementRef in the first sender's statements (sent as NULL):
    # each row as if every column had been sent in full.
    writer = StatementWriter(pool, wait_ms=200.0)
    await writer.start()
    other = {"objectType": "Agent", "account": {"homePage": "http://lrs.example", "name": "other sender"}}
    try:
        first = prepared(statement(), statement())
        second = prepare_statements([statement(context={"registration": str(uuid.uuid4())})], version="1.0.3",
                                    authority=other, new_id=uuid.uuid4)
        await asyncio.gather(writer.append("t1", first), writer.append("t1", second))
        assert writer.groups_committed == 1
    finally:
        await writer.close()
    rows = await pool.fetch("SELECT tenant, statement_id, authority_key, registration, voided, voids, statement_ref"
                            " FROM statements ORDER BY position")
    assert len(rows) == 3
    by_id = {r["statement_id"]: r for r in rows}
    for prepared_statement in [*first, *second]:
        row = by_id[prepared_statement.statement_id]
        assert row["tenant"] == "t1"
        assert row["authority_key"] == await pool.fetchval(
            "SELECT statement_key('t1', 'U:' || $1)", authority_key(prepared_statement.body["authority"]))
        assert row["registration"] == prepared_statement.registration
        assert (row["voided"], row["voids"], row["statement_ref"]) == (False, None, None)
    assert verify_chain(await read_events_after(pool, 0, 100)) is None


async def test_database_error_fails_only_that_group(writer: StatementWriter, pool: asyncpg.Pool) -> None:
    bad = prepared(statement())[0]
    # PostgreSQL text cannot hold NUL: COPY fails inside the transaction.
    bad = PreparedStatement(**{**{f: getattr(bad, f) for f in bad.__struct_fields__}, "verb_id": "bad\x00verb"})  # type: ignore[attr-defined]
    with pytest.raises(asyncpg.PostgresError):
        await writer.append("default", [bad])
    assert await last_position(pool) == 0
    results = await writer.append("default", prepared(statement()))
    assert results[0].position == 1  # the writer goes on; no position was lost


async def test_voiding(writer: StatementWriter, pool: asyncpg.Pool) -> None:
    target = prepared(statement())
    await writer.append("default", target)
    target_id = target[0].statement_id
    voider = prepared(voiding(target_id))
    await writer.append("default", voider)
    assert await get_statement(pool, "default", target_id, voided=False) is None
    assert await get_statement(pool, "default", target_id, voided=True) is not None
    # A voiding statement cannot be voided: 400, and nothing of that request is kept.
    other = prepared(statement(), voiding(voider[0].statement_id))
    with pytest.raises(XapiError) as caught:
        await writer.append("default", other)
    assert caught.value.status == 400
    assert await get_statement(pool, "default", other[0].statement_id, voided=False) is None
    # A statement arriving after its voiding statement is stored voided.
    late_id = uuid.uuid4()
    await writer.append("default", prepared(voiding(late_id)))
    await writer.append("default", prepared(statement(id=str(late_id))))
    assert await get_statement(pool, "default", late_id, voided=False) is None
    assert await get_statement(pool, "default", late_id, voided=True) is not None


async def test_close_answers_everything_accepted(pool: asyncpg.Pool) -> None:
    writer = StatementWriter(pool, wait_ms=50.0)
    await writer.start()
    pending = [asyncio.ensure_future(writer.append("default", prepared(statement()))) for _ in range(20)]
    await asyncio.sleep(0)  # let every request enqueue
    assert writer.in_flight == 20
    await writer.close()
    results = await asyncio.gather(*pending)
    assert sorted(r[0].position for r in results) == list(range(1, 21))
    assert writer.in_flight == 0
    with pytest.raises(WriterClosedError):
        await writer.append("default", prepared(statement()))


async def test_committed_listeners_and_consistent_through(writer: StatementWriter) -> None:
    seen: list[int] = []
    writer.committed.append(seen.append)
    before = writer.consistent_through()
    results = await writer.append("default", prepared(statement(), statement()))
    assert seen == [2]
    assert results[0].stored > before  # nothing is stored at or below a handed-out time
    assert writer.consistent_through() >= results[-1].stored


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
        await _until(lambda: _lock_waiters(pool), 1)  # the writer waits for the head from here
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


async def test_a_defining_group_merges_its_definitions_and_moves_their_checkpoint(
    writer: StatementWriter, pool: asyncpg.Pool
) -> None:
    """The group's own statement moves the definitions' checkpoint (no round trip
    of its own); groups without a defining sender leave it and the rows alone."""
    activity = "http://example.com/defined"

    def defined(name: dict[str, str]) -> dict[str, Any]:
        return statement(activity=activity, object={"id": activity, "definition": {"name": name}})

    checkpoint = "SELECT position FROM activity_definitions_checkpoint WHERE singleton"
    row = "SELECT definition FROM activity_definitions WHERE tenant = 'default' AND activity_id = $1"
    before = await pool.fetchval(checkpoint)
    await writer.append("default", prepared(defined({"en": "Not defining"})), defines=False)
    assert await pool.fetchval(checkpoint) == before
    assert await pool.fetchval(row, activity) is None
    await writer.append("default", prepared(defined({"en": "One"})), defines=True)
    await writer.append("default", prepared(defined({"vi": "Một"}), defined({"en": "Two"})), defines=True)
    assert await pool.fetchval(checkpoint) == writer.last_position
    assert json.loads(await pool.fetchval(row, activity)) == {"name": {"en": "Two", "vi": "Một"}}


async def test_small_defining_groups_read_their_definitions_in_the_head_locks_call(
    migrated_url: str, pool: asyncpg.Pool
) -> None:
    """Single-statement groups of defining senders read and lock the canonical
    definitions in the call that takes the head lock (no round trip of their
    own under the lock); two writers merging into the same Activity at once
    lose none of each other's names."""
    from lrs.store.activities import SELECT_DEFINITIONS_FOR_UPDATE
    from lrs.store.pool import create_statement_pool

    activity = "http://example.com/defined-concurrently"

    def named(language: str) -> dict[str, Any]:
        return statement(activity=activity, object={"id": activity, "definition": {"name": {language: language}}})

    pools = [await create_statement_pool(migrated_url, application_name=f"lrs-writer-defs-{n}", max_size=1)
             for n in range(2)]
    writers = [StatementWriter(pool, wait_ms=0.0, shared_log=True, group_pool=groups) for groups in pools]
    try:
        for writer in writers:
            await writer.start()
        languages = [f"x{n}" for n in range(24)]
        await asyncio.gather(*(
            writers[n % 2].append("default", prepared(named(language)), defines=True)
            for n, language in enumerate(languages)
        ))
        definition = await pool.fetchval(
            "SELECT definition FROM activity_definitions WHERE tenant = 'default' AND activity_id = $1", activity
        )
        assert json.loads(definition) == {"name": {language: language for language in languages}}
        for groups in pools:
            async with groups.acquire() as conn:
                sent = [row["statement"] for row in await conn.fetch("SELECT statement FROM pg_prepared_statements")]
            assert any("log_head_locked_with_touched_and_definitions" in text for text in sent), sent
            assert SELECT_DEFINITIONS_FOR_UPDATE not in sent
    finally:
        for writer in writers:
            await writer.close()
        for groups in pools:
            await groups.close()


async def _lock_waiters(pool: asyncpg.Pool) -> int:
    return await pool.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )


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
            await _until(lambda: _lock_waiters(pool), 2)
            assert await _lock_waiters(pool) == 2  # both snapshots predate the other's commit
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


async def _idle_in_transaction(pool: asyncpg.Pool) -> int:
    return await pool.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND state LIKE 'idle in transaction%'"
    )


async def test_a_commit_that_begins_the_next_group_has_committed_before_the_answer(
    migrated_url: str, pool: asyncpg.Pool
) -> None:
    """Requests waiting when a group commits: the same round trip begins the
    next group's transaction on the kept connection; every answer still
    means committed, as another session sees, and nothing is left open."""
    writer = StatementWriter(pool, wait_ms=0.0)
    await writer.start()
    outside = await create_pool(migrated_url, min_size=1, max_size=4)  # other sessions
    try:
        async def one(index: int) -> None:
            await asyncio.sleep(index * 0.002)  # arriving while groups commit
            statements = prepared(statement())
            await writer.append("default", statements)
            assert await outside.fetchval(
                "SELECT count(*) FROM statements WHERE statement_id = $1", statements[0].statement_id
            ) == 1

        await asyncio.gather(*(one(index) for index in range(40)))
        assert 0 < writer.groups_chained < writer.groups_committed
        assert writer.statements_committed == 40 == await last_position(pool)
        await _until(lambda: _none_idle(pool), 1)  # the last group found nobody waiting: its connection went back
        assert await _idle_in_transaction(pool) == 0
    finally:
        await writer.close()
        await outside.close()
    assert verify_chain(await read_events_after(pool, 0, 100)) is None


async def _commit_while_the_next_request_goes_away(pool: asyncpg.Pool, writer: StatementWriter) -> None:
    """A first group waits for the head lock another session holds; a second
    request arrives meanwhile (so the first COMMIT begins the next group's
    transaction) and goes away before that group is taken."""
    async with pool.acquire() as blocker:
        transaction = blocker.transaction()
        await transaction.start()
        await blocker.fetchrow("SELECT position FROM log_head WHERE singleton FOR UPDATE")
        first = asyncio.create_task(writer.append("default", prepared(statement())))
        await _until(lambda: _lock_waiters(pool), 1)  # the first group waits for the head
        gone = asyncio.create_task(writer.append("default", prepared(statement())))
        await _until(lambda: writer.pending_statements, 2)
        gone.cancel()  # waiting when the first group commits, gone before the next is taken
        await transaction.rollback()
    await first


async def _none_idle(pool: asyncpg.Pool) -> int:
    return int(await _idle_in_transaction(pool) == 0)


async def _until(count, at_least: int, timeout_s: float = 30.0) -> None:  # noqa: ANN001
    """Poll ``count()`` every 10 ms until it reaches ``at_least``: the moment a
    test needs, however slow the machine (the bound only ends a failing test)."""
    async with asyncio.timeout(timeout_s):
        while (value := count()) is not None and (await value if inspect.isawaitable(value) else value) < at_least:
            await asyncio.sleep(0.01)


async def test_a_begun_transaction_nobody_waits_for_any_more_is_rolled_back(pool: asyncpg.Pool) -> None:
    writer = StatementWriter(pool, wait_ms=50.0)
    await writer.start()
    try:
        await _commit_while_the_next_request_goes_away(pool, writer)
        assert writer.groups_chained == 1
        await _until(lambda: _none_idle(pool) if writer._held is None else 0, 1)
        assert writer._held is None
        assert await _idle_in_transaction(pool) == 0
        assert await last_position(pool) == 1
        await writer.append("default", prepared(statement()))  # the writer goes on
        assert await last_position(pool) == 2
    finally:
        await writer.close()


async def test_a_kept_connection_lost_between_groups_is_not_used_for_the_next(pool: asyncpg.Pool) -> None:
    """The backend of the connection kept for the next group dies while the
    writer gathers that group (PostgreSQL restarted, an operator's
    pg_terminate_backend): the group goes on a connection from the pool, as
    it would have without the kept one, instead of failing on the dead one."""
    # A group is gathered until it has two statements (the 60 s wait only ends a
    # failing test): the second group waits for the third request, which this
    # test sends once the kept backend is dead, however slowly a loaded machine
    # gets there (a 300 ms gathering could end first and use the kept one).
    writer = StatementWriter(pool, wait_ms=60_000.0, max_statements=2)
    await writer.start()
    try:
        async with pool.acquire() as blocker:
            transaction = blocker.transaction()
            await transaction.start()
            await blocker.fetchrow("SELECT position FROM log_head WHERE singleton FOR UPDATE")
            first = asyncio.create_task(writer.append("default", prepared(statement(), statement())))  # full
            await _until(lambda: _lock_waiters(pool), 1)  # the first group waits for the head
            second = asyncio.create_task(writer.append("default", prepared(statement())))
            await _until(lambda: writer.pending_statements, 3)
            await transaction.rollback()
        await first
        assert writer.groups_chained == 1
        kept = await pool.fetchval(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND state LIKE 'idle in transaction%'"
        )
        # While kept it holds no snapshot and no lock but its own transaction's
        # id: nothing for VACUUM, a migration, an erasure or the anchors to wait for.
        assert await pool.fetchval("SELECT backend_xmin FROM pg_stat_activity WHERE pid = $1", kept) is None
        assert await pool.fetchval(
            "SELECT array_agg(locktype ORDER BY locktype) FROM pg_locks WHERE pid = $1", kept
        ) == ["virtualxid"]
        held = writer._held
        assert held is not None
        assert await pool.fetchval("SELECT pg_terminate_backend($1)", kept)
        await _until(lambda: int(not alive(held)), 1)  # the writer's side has seen it go
        assert not second.done()  # still gathered
        third = asyncio.create_task(writer.append("default", prepared(statement())))  # fills the group
        results = await second  # committed on another connection
        assert results[0].position == 3
        assert (await third)[0].position == 4
        assert await last_position(pool) == 4
    finally:
        await writer.close()


async def test_a_failure_while_adding_a_chains_keys_stores_nothing_of_the_group(
    writer: StatementWriter, pool: asyncpg.Pool
) -> None:
    """The keys of StatementRef chains are added in the group's transaction,
    after its rows: when that fails (here the disk, at the insert of
    lrs/store/ref_keys.py), the whole group is rolled back and its requests
    get the storage error; the writer goes on."""
    target = prepared(statement())
    await writer.append("default", target)
    await pool.execute("""
        CREATE FUNCTION refuse_reached_keys() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF current_query() LIKE '%NOT EXISTS (SELECT 1 FROM statement_keys e%' THEN
                RAISE EXCEPTION 'no space left on device' USING ERRCODE = 'disk_full';
            END IF;
            RETURN NEW;
        END $$;
        CREATE TRIGGER refuse_reached_keys BEFORE INSERT ON statement_keys
        FOR EACH ROW EXECUTE FUNCTION refuse_reached_keys();
    """)
    referring = prepared(statement(object={"objectType": "StatementRef", "id": str(target[0].statement_id)}))
    with pytest.raises(asyncpg.exceptions.DiskFullError):
        await writer.append("default", referring)
    assert await last_position(pool) == 1
    assert await pool.fetchval("SELECT count(*) FROM statements") == 1
    assert await pool.fetchval("SELECT count(*) FROM statement_keys WHERE position > 1") == 0
    await pool.execute("DROP TRIGGER refuse_reached_keys ON statement_keys")
    assert (await writer.append("default", referring))[0].position == 2
    # the target's verb key, which only the chain's keys put at the referring Statement's position
    assert await pool.fetchval(
        "SELECT count(*) FROM statement_keys WHERE position = 2 AND key = statement_key('default', $1)",
        "V:http://example.com/verbs/did",
    ) == 1


async def test_a_kept_connection_that_cannot_roll_back_does_not_stop_the_writer(
    pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The transaction begun for a next group nobody waits for any more is
    rolled back on a connection that may be broken: asyncpg reports a
    connection whose backend was terminated, before it sees the socket close,
    as InternalClientError ("cannot switch to state ...; another operation is
    in progress"), which is not an InterfaceError.  The writer must go on
    answering, not end its task and leave every later request waiting."""
    writer = StatementWriter(pool, wait_ms=200.0)
    await writer.start()
    try:
        await _commit_while_the_next_request_goes_away(pool, writer)
        kept = writer._held
        assert kept is not None
        broken = kept._con  # the Connection behind the pool's proxy
        execute = asyncpg.Connection.execute

        async def failing(self: asyncpg.Connection, query: str, *args: Any, **kwargs: Any) -> str:
            if self is broken and query == "ROLLBACK":
                raise asyncpg.exceptions.InternalClientError(
                    "cannot switch to state 13; another operation (2) is in progress"
                )
            return await execute(self, query, *args, **kwargs)

        monkeypatch.setattr(asyncpg.Connection, "execute", failing)
        for _ in range(100):
            if writer._held is None:
                break
            await asyncio.sleep(0.01)
        assert writer._held is None
        results = await asyncio.wait_for(writer.append("default", prepared(statement())), 10)
        assert results[0].position == 2  # the writer goes on
    finally:
        monkeypatch.undo()
        await writer.close()


async def test_a_writer_task_that_dies_fails_what_waits_and_is_started_again(pool: asyncpg.Pool) -> None:
    """A bug that ends the writer's task must not leave requests waiting
    forever: the waiting ones and those that come while it is down get the
    storage-unavailable error (503), and the task runs again after a backoff."""
    writer = StatementWriter(pool, wait_ms=1.0, first_restart_backoff_s=0.5)
    await writer.start()
    take_group = writer._take_group

    def dies_once() -> Any:
        writer._take_group = take_group  # type: ignore[method-assign]
        raise RuntimeError("a bug in the loop")

    writer._take_group = dies_once  # type: ignore[method-assign]
    try:
        async with asyncio.timeout(5):
            with pytest.raises(WriterFailedError) as failed:
                await writer.append("default", prepared(statement()))
        assert storage_unavailable(failed.value)
        assert writer.status() == {
            "state": "restarting", "restarts": 1, "last_failure": "RuntimeError('a bug in the loop')",
        }
        async with asyncio.timeout(5):
            with pytest.raises(WriterFailedError):  # refused at once while the task is down, not queued
                await writer.append("default", prepared(statement()))
        assert writer.in_flight == 0 and writer.pending_statements == 0
        async with asyncio.timeout(5):
            while not writer.running:
                await asyncio.sleep(0.02)
        results = await writer.append("default", prepared(statement()))
        assert [(r.inserted, r.position) for r in results] == [(True, 1)]  # nothing of the failed ones stored
        assert writer.status()["state"] == "running"
    finally:
        async with asyncio.timeout(5):
            await writer.close()
    assert writer.status()["state"] == "stopped"


async def test_groups_on_a_pool_that_is_not_reset_send_no_reset_and_stay_durable(
    migrated_url: str, pool: asyncpg.Pool
) -> None:
    """The service gives the writer a pool whose connections are not reset
    on release (lrs.store.pool.create_statement_pool): a group that finds
    nobody waiting goes back after its COMMIT with no reset query (one
    PostgreSQL transaction a group, not two), with synchronous_commit on,
    and the next group on the same connection finds nothing left open."""
    from lrs.store.pool import create_statement_pool

    groups = await create_statement_pool(migrated_url, application_name="lrs-writer-test", max_size=2)
    writer = StatementWriter(pool, wait_ms=0.0, group_pool=groups)
    await writer.start()
    try:
        for _ in range(5):  # one after another: each group finds nobody waiting
            await writer.append("default", prepared(statement()))
        assert writer.groups_committed == 5 and writer.groups_chained == 0
        rows = await pool.fetch(
            "SELECT state, query FROM pg_stat_activity WHERE application_name = 'lrs-writer-test'"
        )
        assert [(row["state"], row["query"]) for row in rows] == [("idle", "COMMIT")]
        async with groups.acquire() as conn:  # what the groups' sessions run with
            assert await conn.fetchval("SHOW synchronous_commit") == "on"
    finally:
        await writer.close()
        await groups.close()
    assert await last_position(pool) == 5
    assert verify_chain(await read_events_after(pool, 0, 100)) is None


async def test_a_group_whose_cached_statement_a_migration_changed_answers_storage_unavailable(
    migrated_url: str, pool: asyncpg.Pool
) -> None:
    """A migration that changes a column the groups read (ALTER TABLE while
    the service runs) makes PostgreSQL refuse the group connection's cached
    statement inside the group's transaction (asyncpg's
    InvalidCachedStatementError, which it retries only outside one): that
    group is a storage failure, 503 with Retry-After, not a 500; the next
    group prepares again and commits."""
    from lrs.store.pool import create_statement_pool

    groups = await create_statement_pool(migrated_url, application_name="lrs-writer-test", max_size=1)
    writer = StatementWriter(pool, wait_ms=0.0, group_pool=groups)
    await writer.start()
    many = 64  # a group that reads the head on its own (SELECT ... FOR UPDATE), not with its lookups
    try:
        await writer.append("default", prepared(*(statement() for _ in range(many))))
        await pool.execute("ALTER TABLE log_head ALTER COLUMN key_epoch TYPE numeric")
        with pytest.raises(Exception) as failed:
            await writer.append("default", prepared(*(statement() for _ in range(many))))
        assert isinstance(failed.value, asyncpg.exceptions.InvalidCachedStatementError)
        assert storage_unavailable(failed.value)
        await writer.append("default", prepared(*(statement() for _ in range(many))))
    finally:
        await writer.close()
        await groups.close()
    assert await last_position(pool) == 2 * many


async def test_a_definition_the_catch_up_inserts_while_a_small_group_waits_is_merged_not_overwritten(
    writer: StatementWriter, pool: asyncpg.Pool
) -> None:
    """The catch-up (lrs.store.activities.catch_up_definitions) holds the
    definitions' checkpoint while it inserts a definition; a small defining
    group waiting for the checkpoint in its head-lock call reads the row the
    catch-up committed (the call's definitions query starts after the lock
    is granted) and merges into it, rather than taking it for missing and
    overwriting it."""
    activity = "http://example.com/defined-during-catch-up"
    async with pool.acquire() as catch_up:
        transaction = catch_up.transaction()
        await transaction.start()
        await catch_up.execute("SELECT position FROM activity_definitions_checkpoint WHERE singleton FOR UPDATE")
        await catch_up.execute(
            "INSERT INTO activity_definitions (tenant, activity_id, definition, position) VALUES ('default', $1, $2, 0)",
            activity, json.dumps({"name": {"vi": "Bài một"}}).encode(),
        )
        append = asyncio.create_task(writer.append(
            "default", prepared(statement(activity=activity, object={"id": activity, "definition": {"name": {"en": "One"}}})),
            defines=True,
        ))
        await asyncio.sleep(0.2)
        assert not append.done()  # waiting for the checkpoint, under the head lock
        await transaction.commit()
    await append
    definition = await pool.fetchval(
        "SELECT definition FROM activity_definitions WHERE tenant = 'default' AND activity_id = $1", activity
    )
    assert json.loads(definition) == {"name": {"en": "One", "vi": "Bài một"}}
