"""Consumers that come after the stream let the messages go (interest
retention: a message is kept only for the consumers the stream has, until
they acknowledged it) catch up from the PostgreSQL log with nothing lost: a
projection created later, and ``lrs forward`` under a new name."""

from __future__ import annotations

import asyncio
import contextlib
import random
from typing import Any

import asyncpg
import msgspec
import nats
import pytest

from connectors.fakelrs import FakeLrs
from connectors.forward.forwarder import Forwarder
from connectors.forward.logcheck import LogCheck
from connectors.forward.model import ForwardFilter
from connectors.forward.run import ForwardOptions
from connectors.framework.sink import LrsSink
from lrs.nats.bus import STREAM_NAME
from lrs.relay import Relay
from lrs.service import forward_opener
from lrs.store import StatementWriter
from lrs.store.event_append import append_events
from lrs.store.log_reader import last_position, read_events_after
from projections.competency.store import CompetencyProjection, digest
from projections.replay import replay
from projections.runner import ProjectionRunner
from tests.conftest import HISTORY_CONSUMER
from tests.integration.competency_statements import CATALOG, MODULES, course_statement, write

pytestmark = pytest.mark.slow


async def _logged_statement_ids(pool: asyncpg.Pool) -> set[str]:
    return {str(r.statement_id) for r in await read_events_after(pool, 0, 100) if r.event_type == "statement"}


async def _bare_stream(url: str) -> Any:
    """The server's stream without the consumer that keeps every message."""
    nc = await nats.connect(url)
    await nc.jetstream().delete_consumer(STREAM_NAME, HISTORY_CONSUMER)
    return nc


async def _stream_messages(nc: Any) -> tuple[int, int]:
    state = (await nc.jetstream().stream_info(STREAM_NAME)).state
    return state.messages, state.last_seq


async def test_a_projection_created_after_its_messages_went_catches_up_from_the_log(
    pool: asyncpg.Pool, writer: StatementWriter, nats_control: Any
) -> None:
    nc = await _bare_stream(nats_control.url)
    relay = Relay(pool, nats_control.url, batch_size=50, poll_interval=0.05)
    try:
        rng = random.Random(7)
        await write(writer, *(course_statement(rng.randrange(5), *rng.choice(MODULES), rng.randrange(2000))
                              for _ in range(45)))
        await relay.run(until_caught_up=True)
        head = await last_position(pool)
        assert await _stream_messages(nc) == (0, head)  # relayed, and kept for no one

        runner = ProjectionRunner(pool, CompetencyProjection(CATALOG))
        runner.applier.max_gap_fill = 10  # bounded stretches of the log
        stop = asyncio.Event()
        stretches: list[int] = []

        def seen(outcome: Any) -> None:
            stretches.append(outcome.checkpoint)
            if outcome.checkpoint >= head:
                stop.set()

        await asyncio.wait_for(runner.run(nats_control.url, stop, fetch_timeout=0.1, on_batch=seen), 60)
        assert await runner.checkpoint() == head
        assert stretches[:5] == [10, 20, 30, 40, 45]
    finally:
        await relay.stop()
        await nc.close()
    live = await digest(pool)
    await replay(pool, CompetencyProjection(CATALOG))
    assert await digest(pool) == live


async def test_a_new_forwarder_forwards_what_the_stream_no_longer_holds_from_the_log(
    pool: asyncpg.Pool, writer: StatementWriter, nats_control: Any, database_url: str
) -> None:
    nc = await _bare_stream(nats_control.url)
    relay = Relay(pool, nats_control.url, batch_size=50, poll_interval=0.05)
    target = FakeLrs("target", "target-secret")
    await target.start()
    try:
        await write(writer, *(course_statement(n, "searching", "http://adlnet.gov/expapi/verbs/passed", n)
                              for n in range(5)))
        async with pool.acquire() as conn, conn.transaction():  # an event that is not a statement
            await append_events(conn, "default", "roster", [msgspec.json.encode({"learners": []})])
        await write(writer, *(course_statement(n, "searching", "http://adlnet.gov/expapi/verbs/passed", n)
                              for n in range(5, 8)))
        await relay.run(until_caught_up=True)
        assert await _stream_messages(nc) == (0, 9)

        async with (LrsSink(target.url, "target", "target-secret") as sink,
                    LogCheck(database_url) as log_check):
            def forwarder() -> Forwarder:
                return Forwarder(nats_control.url, sink, ForwardFilter.of([], [], []),
                                 ForwardOptions(name="late", until_caught_up=True, fetch_timeout=0.2, batch_size=3),
                                 log_check, open_stored=forward_opener(log_check.pool, None))

            first = forwarder()
            stats = await asyncio.wait_for(first.run(), 60)
            assert (stats.forwarded, stats.from_log, stats.replayed) == (8, 8, 0)
            row = await pool.fetchrow("SELECT position, done_above FROM forward_checkpoints WHERE name = 'late'")
            assert (row["position"], list(row["done_above"])) == (9, [])

            # Its consumer exists now: what comes next is kept for it and comes through the stream.
            await write(writer, course_statement(9, "searching", "http://adlnet.gov/expapi/verbs/passed", 9))
            await relay.run(until_caught_up=True)
            assert (await _stream_messages(nc))[0] == 1
            stats = await asyncio.wait_for(forwarder().run(), 60)
            assert (stats.forwarded, stats.from_log) == (1, 0)
            assert await _stream_messages(nc) == (0, 10)
    finally:
        await relay.stop()
        await target.close()
        await nc.close()
    logged = await _logged_statement_ids(pool)
    assert set(target.statements) == logged and len(logged) == 9


async def test_a_statement_from_the_log_the_target_fails_on_waits_retry_delay_before_its_next_try(
    pool: asyncpg.Pool, writer: StatementWriter, nats_control: Any, database_url: str
) -> None:
    """A 500 on a statement read from the log is retried after ``retry_delay``,
    as a message negatively acknowledged is: not read again at once until its
    deliveries run out and it is parked while the target is still failing."""
    nc = await _bare_stream(nats_control.url)
    relay = Relay(pool, nats_control.url, batch_size=50, poll_interval=0.05)
    target = FakeLrs("target", "target-secret")
    await target.start()
    try:
        await write(writer, *(course_statement(n, "searching", "http://adlnet.gov/expapi/verbs/passed", n)
                              for n in range(3)))
        await relay.run(until_caught_up=True)
        assert (await _stream_messages(nc))[0] == 0  # the forwarder reads them all from the log
        failing = next(str(r.statement_id) for r in await read_events_after(pool, 0, 10) if r.event_type == "statement")
        target.fail_ids.add(failing)  # a target that fails on it for a moment
        async with (LrsSink(target.url, "target", "target-secret", max_attempts=1) as sink,
                    LogCheck(database_url) as log_check):
            forwarder = Forwarder(nats_control.url, sink, ForwardFilter.of([], [], []),
                                  ForwardOptions(name="retrying", until_caught_up=True, fetch_timeout=0.1,
                                                 retry_delay=1.5, max_deliveries=3),
                                  log_check, open_stored=forward_opener(log_check.pool, None))
            running = asyncio.create_task(forwarder.run())
            for _ in range(1000):
                if target.received[failing] or running.done():
                    break
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.6)
            target.fail_ids.clear()  # well before retry_delay ran out
            stats = await asyncio.wait_for(running, 60)
    finally:
        await relay.stop()
        await target.close()
        await nc.close()
    assert stats.parked == 0 and stats.retried >= 1
    assert failing in target.statements and len(target.statements) == 3
    assert (stats.forwarded, stats.from_log) == (3, 3)  # the failed try sent nothing: not counted


async def test_what_a_crashed_nats_server_lost_reaches_lrs_forward_from_the_log(
    pool: asyncpg.Pool, writer: StatementWriter, nats_control: Any, database_url: str
) -> None:
    """nats-server killed before it wrote the last messages the relay had
    published: with every earlier message acknowledged the stream holds none,
    so the relay cannot see what it lost and resumes after its checkpoint
    (lrs/relay.py); the forwarder reads the lost statements from the log."""
    nc = await _bare_stream(nats_control.url)
    target = FakeLrs("target", "target-secret")
    await target.start()

    async def relay_caught_up() -> None:
        relay = Relay(pool, nats_control.url, batch_size=50, poll_interval=0.05)
        try:
            await relay.run(until_caught_up=True)
        finally:
            await relay.stop()

    async def statements(first: int, count: int) -> None:
        await write(writer, *(course_statement(n, "searching", "http://adlnet.gov/expapi/verbs/passed", n)
                              for n in range(first, first + count)))

    try:
        async with (LrsSink(target.url, "target", "target-secret") as sink,
                    LogCheck(database_url) as log_check):
            def forwarder() -> Forwarder:
                return Forwarder(nats_control.url, sink, ForwardFilter.of([], [], []),
                                 ForwardOptions(name="crash", until_caught_up=True, fetch_timeout=0.2),
                                 log_check, open_stored=forward_opener(log_check.pool, None))

            await statements(0, 3)
            await relay_caught_up()
            assert (await asyncio.wait_for(forwarder().run(), 60)).forwarded == 3  # its consumer exists now
            blocks = sorted((nats_control.store_dir / "jetstream").glob(f"*/streams/{STREAM_NAME}/msgs/*.blk"))
            written = {block: block.stat().st_size for block in blocks}

            await statements(3, 3)
            await relay_caught_up()
            assert await _stream_messages(nc) == (3, 6)  # kept for the forwarder
            await nc.close()
            nats_control.kill()  # the server dies before these three reach its disk
            for _ in range(200):
                if not nats_control.running:
                    break
                await asyncio.sleep(0.05)
            for path in (nats_control.store_dir / "jetstream").glob(f"*/streams/{STREAM_NAME}/msgs/*"):
                if path in written:
                    with path.open("r+b") as block:
                        block.truncate(written[path])
                else:
                    path.unlink()  # a newer block, and the index that names the lost messages
            await nats_control.start()
            nc = await nats.connect(nats_control.url)
            assert await _stream_messages(nc) == (0, 3)  # lost, and nothing left to say up to where

            await relay_caught_up()
            assert (await _stream_messages(nc))[0] == 0  # the relay cannot tell: nothing published again
            await statements(6, 1)
            await relay_caught_up()
            stats = await asyncio.wait_for(forwarder().run(), 60)
            assert (stats.forwarded, stats.from_log) == (4, 3)
    finally:
        await target.close()
        await nc.close()
    logged = await _logged_statement_ids(pool)
    assert set(target.statements) == logged and len(logged) == 7


async def test_statements_arriving_while_lrs_forward_reads_the_log_and_a_restart_mid_way_lose_and_repeat_nothing(
    pool: asyncpg.Pool, writer: StatementWriter, nats_control: Any, database_url: str
) -> None:
    nc = await _bare_stream(nats_control.url)
    relay = Relay(pool, nats_control.url, batch_size=50, poll_interval=0.02)
    relaying = asyncio.create_task(relay.run())
    target = FakeLrs("target", "target-secret")
    await target.start()

    async def statements(first: int, count: int) -> None:
        for n in range(first, first + count):
            await write(writer, course_statement(n, "searching", "http://adlnet.gov/expapi/verbs/passed", n))
            await asyncio.sleep(0.01)

    try:
        await statements(0, 20)  # the history: relayed, kept for no one
        async with (LrsSink(target.url, "target", "target-secret") as sink,
                    LogCheck(database_url) as log_check):
            stop = asyncio.Event()

            def forwarder(until_caught_up: bool) -> Forwarder:
                def progress(stats: Any) -> None:
                    if stats.forwarded >= 8:
                        stop.set()  # the first run stops mid-way
                return Forwarder(nats_control.url, sink, ForwardFilter.of([], [], []),
                                 ForwardOptions(name="busy", until_caught_up=until_caught_up, fetch_timeout=0.1,
                                                batch_size=4),
                                 log_check, open_stored=forward_opener(log_check.pool, None), on_progress=progress)

            arriving = asyncio.create_task(statements(20, 20))  # while the log is read
            first = await asyncio.wait_for(forwarder(False).run(stop), 60)
            assert 8 <= first.forwarded < 40
            await arriving
            await statements(40, 3)
            deadline = asyncio.get_running_loop().time() + 30
            while await pool.fetchval("SELECT max(position) FROM relay_checkpoints") != 43:
                assert asyncio.get_running_loop().time() < deadline
                await asyncio.sleep(0.05)
            second = await asyncio.wait_for(forwarder(True).run(), 60)
            assert first.forwarded + second.forwarded == 43
    finally:
        relaying.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await relaying
        await relay.stop()
        await target.close()
        await nc.close()
    logged = await _logged_statement_ids(pool)
    assert set(target.statements) == logged and len(logged) == 43
    assert set(target.received.values()) == {1}  # none sent twice
