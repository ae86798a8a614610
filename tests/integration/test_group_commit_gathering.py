"""The group commit's wait ends as soon as waiting cannot make the group
larger (lrs.store.gathering): every announced request has reached the writer
and every client answered a moment ago is back.  The wait here is a minute,
so a group that commits at all has ended its wait early; the writer's own
counters say how many groups it made."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any, AsyncIterator

import asyncpg
import pytest

from lrs.ingest.prepare import prepare_statements
from lrs.store import StatementWriter
from tests.statements import new_id, statement

AUTHORITY = {"objectType": "Agent", "mbox": "mailto:authority@example.com"}
A_MINUTE_MS = 60_000.0
BOUND_S = 10.0  # only a bound for a failing test: the groups here commit in milliseconds
STATISTICS_BOUND_S = 60.0  # PostgreSQL reports a backend's statistics within seconds of an idle moment


def one() -> list[Any]:
    body = statement(statement_id=new_id(), mbox="mailto:learner@example.com", activity="http://example.com/a")
    return prepare_statements([body], version="1.0.3", authority=AUTHORITY, new_id=uuid.uuid4)


@pytest.fixture
async def patient(pool: asyncpg.Pool) -> AsyncIterator[StatementWriter]:
    """A writer that would gather each group for a minute."""
    writer = StatementWriter(pool, wait_ms=A_MINUTE_MS)
    await writer.start()
    try:
        yield writer
    finally:
        await writer.close()


async def settle() -> None:
    """Let every task that can run, run (the writer's too)."""
    for _ in range(20):
        await asyncio.sleep(0)


async def test_a_group_whose_every_announced_request_is_queued_commits_before_the_wait(
    patient: StatementWriter,
) -> None:
    clients = [object() for _ in range(8)]
    arrivals = [patient.arrival(client) for client in clients]
    results = await asyncio.wait_for(
        asyncio.gather(*(patient.append("default", one(), arrival=a) for a in arrivals)), BOUND_S
    )
    assert sorted(r[0].position for r in results) == list(range(1, 9))
    assert patient.groups_committed == 1  # one group of all eight, not one each
    assert patient.waits_ended_early == 1


async def test_a_request_still_in_its_handler_is_waited_for(patient: StatementWriter) -> None:
    arrivals = [patient.arrival(object()) for _ in range(4)]
    queued = [asyncio.ensure_future(patient.append("default", one(), arrival=a)) for a in arrivals[:3]]
    await settle()
    assert patient.in_flight == 3
    assert patient.groups_committed == 0 and not any(f.done() for f in queued)
    last = patient.append("default", one(), arrival=arrivals[3])
    await asyncio.wait_for(asyncio.gather(last, *queued), BOUND_S)
    assert patient.groups_committed == 1 and patient.statements_committed == 4


async def test_a_request_that_leaves_without_appending_stops_holding_the_group(patient: StatementWriter) -> None:
    arrivals = [patient.arrival(object()) for _ in range(3)]
    queued = [asyncio.ensure_future(patient.append("default", one(), arrival=a)) for a in arrivals[:2]]
    await settle()
    assert patient.groups_committed == 0
    arrivals[2].close()  # refused before it reached the writer (a 400, say)
    await asyncio.wait_for(asyncio.gather(*queued), BOUND_S)
    assert patient.groups_committed == 1 and patient.statements_committed == 2


async def test_the_next_group_waits_for_the_clients_the_last_one_answered(patient: StatementWriter) -> None:
    clients = [object() for _ in range(3)]
    await asyncio.wait_for(
        asyncio.gather(*(patient.append("default", one(), arrival=patient.arrival(c)) for c in clients)), BOUND_S
    )
    assert patient.groups_committed == 1
    # Two of the three come back; the third, answered a moment ago, may yet.
    back = [asyncio.ensure_future(patient.append("default", one(), arrival=patient.arrival(c))) for c in clients[:2]]
    await settle()
    assert patient.in_flight == 2 and patient.groups_committed == 1
    third = patient.append("default", one(), arrival=patient.arrival(clients[2]))
    await asyncio.wait_for(asyncio.gather(third, *back), BOUND_S)
    assert patient.groups_committed == 2 and patient.statements_committed == 6


async def test_a_request_nobody_announced_keeps_the_whole_wait(pool: asyncpg.Pool) -> None:
    writer = StatementWriter(pool, wait_ms=A_MINUTE_MS)
    await writer.start()
    try:
        announced = asyncio.ensure_future(writer.append("default", one(), arrival=writer.arrival(object())))
        unannounced = asyncio.ensure_future(writer.append("default", one()))
        await settle()
        assert writer.in_flight == 2 and writer.groups_committed == 0
    finally:
        await writer.close()  # closing commits what was accepted
    await asyncio.gather(announced, unannounced)
    assert writer.groups_committed == 1 and writer.waits_ended_early == 0


async def test_without_a_wait_connections_answered_once_are_not_held(pool: asyncpg.Pool) -> None:
    """With LRS_GROUP_COMMIT_WAIT_MS=0 the writer never gathers, so never asks
    who is expected back: clients of one request each (a new connection a
    request) must still be forgotten once past the horizon."""
    from lrs.store.gathering import EXPECTED_BACK_S

    writer = StatementWriter(pool, wait_ms=0)
    await writer.start()
    try:
        for _ in range(3):
            arrival = writer.arrival(object())
            try:
                await asyncio.wait_for(writer.append("default", one(), arrival=arrival), BOUND_S)
            finally:
                arrival.close()
        await asyncio.sleep(EXPECTED_BACK_S * 1.5)
        arrival = writer.arrival(object())
        try:
            await asyncio.wait_for(writer.append("default", one(), arrival=arrival), BOUND_S)
        finally:
            arrival.close()
        assert len(writer._gathering._answered) == 1  # the last one only
    finally:
        await writer.close()


GROUPS = "lrs-writer-ahead"  # application_name of the groups' sessions below


async def _in_transaction(pool: asyncpg.Pool) -> list[str]:
    """The states of the writer's group sessions that are in a transaction."""
    rows = await pool.fetch(
        "SELECT state FROM pg_stat_activity WHERE application_name = $1 AND state LIKE 'idle in transaction%'",
        GROUPS,
    )
    return [row["state"] for row in rows]


@contextlib.asynccontextmanager
async def _writer_on_groups_pool(database_url: str, pool: asyncpg.Pool, **options: Any) -> AsyncIterator[StatementWriter]:
    """A writer whose groups go on a pool not reset on release, as the service's."""
    from lrs.store.pool import create_statement_pool

    groups = await create_statement_pool(database_url, application_name=GROUPS, max_size=2)
    writer = StatementWriter(pool, wait_ms=20.0, group_pool=groups, **options)
    await writer.start()
    try:
        yield writer
    finally:
        await writer.close()
        await groups.close()


async def _lock_step(writer: StatementWriter, clients: list[object], rounds: int, leaving: bool = False) -> None:
    """Each client sends one request after another, as an HTTP client on its
    own connection does (announced in the handler, closed after the answer)."""
    async def client(connection: object) -> None:
        for _ in range(rounds):
            arrival = writer.arrival(connection)
            if leaving:
                arrival.last_on_connection()
            try:
                await writer.append("default", one(), arrival=arrival)
            finally:
                arrival.close()

    await asyncio.wait_for(asyncio.gather(*(client(c) for c in clients)), BOUND_S)


async def test_a_commit_whose_clients_come_back_begins_their_next_groups_transaction(
    database_url: str, pool: asyncpg.Pool
) -> None:
    """Clients in lock-step (every client of the writer in each group, so
    nobody waits at its COMMIT): each COMMIT begins the next group's
    transaction in the same round trip, as the clients it answers will be
    back.  The one begun after the last group, which nobody comes for, is
    rolled back after ``begun_hold_s``, and its connection goes back to the
    pool."""
    hold = 2.0  # a loaded machine's checks below are within it (0.15-0.45 s at load 10-12)
    async with _writer_on_groups_pool(database_url, pool, begun_hold_s=hold) as writer:
        await _lock_step(writer, [object() for _ in range(4)], rounds=5)
        assert writer.statements_committed == 20
        assert writer.groups_chained == writer.groups_committed  # the last one's begun for nobody
        assert writer._held is not None and await _in_transaction(pool) == ["idle in transaction"]
        # PostgreSQL's clock: when the last COMMIT began the held transaction.
        began = await pool.fetchval(
            "SELECT xact_start FROM pg_stat_activity WHERE application_name = $1 AND state LIKE 'idle in transaction%'",
            GROUPS,
        )
        async with asyncio.timeout(30):  # rolled back once the hold is over (however late on a loaded machine)
            while writer._held is not None:
                await asyncio.sleep(0.01)
        # and not before: seen at least the hold after its BEGIN (a lower bound, load
        # only adds to it; from the BEGIN, not the lock-step's start, so it is close)
        assert (await pool.fetchval("SELECT clock_timestamp()") - began).total_seconds() >= hold
        assert writer._held is None and writer.transactions_begun_unused == 1
        # _held is let go as the ROLLBACK is sent; the session leaves its
        # transaction when PostgreSQL has run it (a round trip later)
        async with asyncio.timeout(30):
            while await _in_transaction(pool):
                await asyncio.sleep(0.01)
        # the writer goes on; every answer was committed, as another session sees
        await _lock_step(writer, [object()], rounds=1)
        assert await pool.fetchval("SELECT count(*) FROM statements") == 21


async def test_a_commit_whose_clients_close_their_connections_begins_nothing(
    database_url: str, pool: asyncpg.Pool
) -> None:
    async with _writer_on_groups_pool(database_url, pool) as writer:
        await _lock_step(writer, [object() for _ in range(4)], rounds=3, leaving=True)
        assert writer.statements_committed == 12
        assert writer.groups_chained == 0 and writer._held is None
        assert await _in_transaction(pool) == []


async def test_a_writer_in_lock_step_still_lets_postgresql_report_its_statistics(
    database_url: str, pool: asyncpg.Pool
) -> None:
    """PostgreSQL reports a backend's statistics (rows inserted, which
    autovacuum and autoanalyze go by) only while it is idle outside a
    transaction.  Groups in lock-step, each COMMIT beginning the next
    transaction, would keep the writer's backend in one for as long as the
    stream lasts: at least every ``stats_every_s`` a COMMIT begins nothing.

    The stream goes on until PostgreSQL reports the rows (however long a
    loaded machine takes to give the backend an idle moment at least a
    second after its last report, PostgreSQL's own rate: bounded only for a
    failing test), never broken otherwise: a transaction begun for the next
    group is held for a minute, so none is rolled back for want of clients."""
    async with _writer_on_groups_pool(database_url, pool, stats_every_s=0.5, begun_hold_s=60.0) as writer:
        clients = [object() for _ in range(4)]

        async def reported() -> int:
            return await pool.fetchval("SELECT n_tup_ins FROM pg_stat_user_tables WHERE relname = 'events'")

        async with asyncio.timeout(STATISTICS_BOUND_S):
            while not await reported():
                await _lock_step(writer, clients, rounds=1)
        assert writer.transactions_begun_unused == 0  # no break in the stream but those stats_every_s makes
        assert 0 < writer.groups_chained < writer.groups_committed  # in lock step, and some COMMIT began nothing


async def test_a_key_made_in_a_begun_transaction_is_dated_when_it_is_made(
    database_url: str, pool: asyncpg.Pool
) -> None:
    """A transaction a COMMIT began waits up to ``begun_hold_s`` for its
    group, and PostgreSQL's now() is the time of its BEGIN: a learner key
    the group makes must not be dated from before its request (nor before
    an erasure committed meanwhile, which its created_at would then precede)."""
    import os

    from lrs.privacy.master import MasterKey
    from lrs.store.learner_keys import LearnerKeys

    async with _writer_on_groups_pool(database_url, pool, begun_hold_s=5.0) as writer:
        client = object()
        await _lock_step(writer, [client], rounds=2)
        assert writer._held is not None  # the next group's transaction is begun
        await asyncio.sleep(0.5)
        before = await pool.fetchval("SELECT clock_timestamp()")
        keyring = LearnerKeys(pool, MasterKey(os.urandom(32)))
        body = {**statement(statement_id=new_id(), activity="http://example.com/a"),
                "actor": {"objectType": "Agent", "mbox": "mailto:new@example.com"}}
        sealed = await keyring.seal_statements("default", [body], AUTHORITY, make_keys=True)
        prepared = prepare_statements(sealed.statements, version="1.0.3", authority=sealed.authority, new_id=uuid.uuid4)
        arrival = writer.arrival(client)
        try:
            await asyncio.wait_for(writer.append(
                "default", prepared, key_epoch=sealed.epoch, key_refs=sealed.refs,
                ciphertexts=sealed.ciphertexts, new_keys=sealed.new_keys, arrival=arrival,
            ), BOUND_S)
        finally:
            arrival.close()
        made = await pool.fetch("SELECT created_at FROM learner_keys")
        assert made and all(row["created_at"] >= before for row in made)


async def test_a_begun_transaction_holds_no_snapshot_and_no_lock_while_it_waits(
    database_url: str, pool: asyncpg.Pool
) -> None:
    """What docs/operations.md promises of the writer's session idle in a
    transaction: no snapshot (nothing for VACUUM's horizon) and no lock but
    its own virtual transaction id (the log head's lock ended at COMMIT)."""
    async with _writer_on_groups_pool(database_url, pool, begun_hold_s=5.0) as writer:
        await _lock_step(writer, [object()], rounds=2)
        assert writer._held is not None
        row = await pool.fetchrow(
            "SELECT pid, backend_xmin, backend_xid FROM pg_stat_activity"
            " WHERE application_name = $1 AND state = 'idle in transaction'", GROUPS,
        )
        assert row is not None and row["backend_xmin"] is None and row["backend_xid"] is None
        locks = await pool.fetch("SELECT locktype FROM pg_locks WHERE pid = $1", row["pid"])
        assert [lock["locktype"] for lock in locks] == ["virtualxid"]


async def test_clients_coming_back_one_by_one_wake_the_gathering_only_when_the_group_is_whole(
    patient: StatementWriter,
) -> None:
    """Each request that reaches the writer while none other is arriving
    settles the arrivals; the gathering is woken only once the group cannot
    grow (it was woken for every one of them, a task step a request)."""
    clients = [object() for _ in range(6)]
    await asyncio.wait_for(
        asyncio.gather(*(patient.append("default", one(), arrival=patient.arrival(c)) for c in clients)), BOUND_S
    )
    assert patient.groups_committed == 1
    woken = patient.gather_wakeups
    back = []
    for client in clients[:-1]:
        back.append(asyncio.ensure_future(patient.append("default", one(), arrival=patient.arrival(client))))
        await settle()
    assert patient.in_flight == 5 and patient.groups_committed == 1
    assert patient.gather_wakeups == woken  # still growing: nobody woke the gathering
    last = patient.append("default", one(), arrival=patient.arrival(clients[-1]))
    await asyncio.wait_for(asyncio.gather(last, *back), BOUND_S)
    assert patient.groups_committed == 2 and patient.statements_committed == 12
    assert patient.gather_wakeups == woken + 1


class _Connection:
    """A client with aiohttp's protocol's ``transport``: None once lost."""

    def __init__(self) -> None:
        self.transport: object | None = object()


@pytest.mark.parametrize("lost", [False, True])
async def test_a_group_held_only_by_a_client_that_does_not_come_back_commits_at_its_horizon(
    patient: StatementWriter, lost: bool
) -> None:
    """The one wake-up left when every request has reached the writer is the
    horizon of the clients expected back (its connection lost meanwhile, or
    not): the group commits then, not at the end of the minute's wait."""
    clients = [_Connection(), _Connection()]
    await asyncio.wait_for(
        asyncio.gather(*(patient.append("default", one(), arrival=patient.arrival(c)) for c in clients)), BOUND_S
    )
    back = asyncio.ensure_future(patient.append("default", one(), arrival=patient.arrival(clients[0])))
    await settle()
    assert patient.in_flight == 1 and patient.groups_committed == 1  # waiting for the other one
    if lost:
        clients[1].transport = None
    started = asyncio.get_running_loop().time()
    await asyncio.wait_for(back, BOUND_S)
    assert asyncio.get_running_loop().time() - started < BOUND_S / 2
    assert patient.groups_committed == 2 and patient.waits_ended_early == 2
