"""The group commit's wait ends as soon as waiting cannot make the group
larger (lrs.store.gathering): every announced request has reached the writer
and every client answered a moment ago is back.  The wait here is a minute,
so a group that commits at all has ended its wait early; the writer's own
counters say how many groups it made."""

from __future__ import annotations

import asyncio
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
