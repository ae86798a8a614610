"""A relay in a process of its own, woken only by the writers' announcements
(NOTIFY lrs_log, lrs.store.commit_notifications), reaches the log head with
no help from its poll: the poll interval here is far longer than the waits.
The commits checked are the ones no group announces (CommitAnnouncer sends
them alone, after the interval), from two writers, and with the writer's
connection killed between the commit and its announcement."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import AsyncIterator

import asyncpg
import pytest
from structlog.testing import capture_logs

from lrs.ingest.prepare import prepare_statements
from lrs.relay import Relay
from lrs.store.commit_notifications import LOG_CHANNEL, commit_notifications
from lrs.store.pool import create_statement_pool
from lrs.store.writer import StatementWriter
from lrs.xapi.statement import parse_statements
from tests.integration.test_relay import assert_exactly_once, kept_nats, sample, shared_nats  # noqa: F401 - fixtures

AUTHORITY = {"objectType": "Agent", "account": {"homePage": "http://lrs.example", "name": "announce-tests"}}
NO_POLL_S = 60.0  # a relay that needed its poll would miss the waits below
WAIT_S = 10.0


@pytest.fixture
async def listening_relay(pool: asyncpg.Pool, database_url: str, shared_nats: str) -> AsyncIterator[Relay]:
    relay = Relay(pool, shared_nats, name="announced", poll_interval=NO_POLL_S, lock_retry_interval=0.2,
                  backoff_max=1.0)
    async with commit_notifications(database_url, relay.notify):
        await relay.start()
        try:
            yield relay
        finally:
            await relay.stop()


def _statements(count: int) -> list:
    bodies = [{"actor": {"mbox": f"mailto:l{n}@example.com"}, "verb": {"id": "http://example.com/v"},
               "object": {"id": f"http://example.com/a/{uuid.uuid4()}"}} for n in range(count)]
    parsed = parse_statements(json.dumps(bodies).encode(), "1.0.3")
    return prepare_statements(parsed, version="1.0.3", authority=AUTHORITY, new_id=uuid.uuid4)


async def _published_through(relay: Relay, position: int) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_S
    while relay.published_position < position:
        assert loop.time() < deadline, (relay.published_position, position, relay.log_head)
        await asyncio.sleep(0.02)


async def _relay_ready(relay: Relay) -> None:
    """Leading, and past its first rounds (which read the head anyway)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_S
    while not (relay.is_leader and relay.status()["lag"] == 0 and relay.bus.connected):
        assert loop.time() < deadline
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.1)


async def test_two_writers_interleaving_are_published_without_the_relays_poll(
    pool: asyncpg.Pool, database_url: str, listening_relay: Relay
) -> None:
    groups = [await create_statement_pool(database_url, application_name=f"lrs-writer-{n}", max_size=2)
              for n in range(2)]
    writers = [StatementWriter(pool, wait_ms=0.0, shared_log=True, group_pool=g, announce_every_s=0.3)
               for g in groups]
    try:
        for writer in writers:
            await writer.start()
        await _relay_ready(listening_relay)
        head = 0
        for writer in writers:  # each writer's first group carries the announcement
            await writer.append("default", _statements(2))
            head += 2
            await _published_through(listening_relay, head)
        for _ in range(2):
            # Within each writer's interval: no group carries an announcement,
            # each writer announces its last commit alone, the two out of order or not.
            await asyncio.gather(*(writers[n % 2].append("default", _statements(1 + n % 3)) for n in range(6)))
            head = await pool.fetchval("SELECT position FROM log_head")
            await _published_through(listening_relay, head)
            await writers[1].append("default", _statements(1))
            head += 1
            await _published_through(listening_relay, head)
    finally:
        for writer in writers:
            await writer.close()
        for g in groups:
            await g.close()


async def test_a_pending_announcement_survives_the_writers_connection_being_killed(
    pool: asyncpg.Pool, database_url: str, listening_relay: Relay
) -> None:
    groups = await create_statement_pool(database_url, application_name="lrs-writer-killed", max_size=2)
    writer = StatementWriter(pool, wait_ms=0.0, shared_log=True, group_pool=groups, announce_every_s=0.5)
    try:
        await writer.start()
        await _relay_ready(listening_relay)
        await writer.append("default", _statements(2))  # carries the announcement
        await _published_through(listening_relay, 2)
        await writer.append("default", _statements(3))  # within the interval: announced later, alone
        head = await pool.fetchval("SELECT position FROM log_head")
        killed = await pool.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1",
            "lrs-writer-killed",
        )
        assert killed >= 1
        await _published_through(listening_relay, head)
    finally:
        await writer.close()
        await groups.close()


async def _listening_backends(pool: asyncpg.Pool) -> list[int]:
    return [r["pid"] for r in await pool.fetch(
        "SELECT pid FROM pg_stat_activity WHERE application_name = 'lrs-commit-listener'"
        " AND datname = current_database() AND query ILIKE 'LISTEN%'")]


async def test_the_listening_connection_is_opened_again_after_its_backend_is_terminated(
    pool: asyncpg.Pool, database_url: str, kept_nats: str, listening_relay: Relay
) -> None:
    """The relay's poll is 60 s here: every wait below is met only by the
    announcements, through a listener opened again after the first one's
    backend was terminated; commits announced while it was down are read
    once it listens again; the stream then holds every position once, in order."""
    groups = await create_statement_pool(database_url, application_name="lrs-writer-relisten", max_size=2)
    writer = StatementWriter(pool, wait_ms=0.0, shared_log=True, group_pool=groups, announce_every_s=0.05)
    reconnects = sample("lrs_listener_reconnects_total", channel=LOG_CHANNEL)
    try:
        await writer.start()
        await _relay_ready(listening_relay)
        await writer.append("default", _statements(2))
        await _published_through(listening_relay, 2)
        [first] = await _listening_backends(pool)
        with capture_logs() as logged:
            assert await pool.fetchval("SELECT pg_terminate_backend($1)", first)
            await writer.append("default", _statements(3))  # announced while nobody listens, or just after
            loop = asyncio.get_running_loop()
            deadline = loop.time() + WAIT_S
            while (await _listening_backends(pool)) in ([], [first]):
                assert loop.time() < deadline, "the commit listener was not opened again"
                await asyncio.sleep(0.02)
            await _published_through(listening_relay, 5)
        outage = [e["event"] for e in logged if e.get("channel") == LOG_CHANNEL]
        assert outage == ["listener.connection_lost", "listener.listening_again"]  # logged once
        for head in (6, 8, 11):  # after the reopening: each commit reached by its announcement
            await writer.append("default", _statements(head - listening_relay.published_position))
            await _published_through(listening_relay, head)
    finally:
        await writer.close()
        await groups.close()
    assert sample("lrs_listener_reconnects_total", channel=LOG_CHANNEL) == reconnects + 1
    messages = await assert_exactly_once(pool, kept_nats)
    assert [int(m.headers["Lrs-Position"]) for m in messages] == list(range(1, 12))
