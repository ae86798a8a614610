"""lrs forward sends a statement overtaken by later ones, however it comes
back: a statement awaiting its retry while the ones after it were accepted
reaches the target once the forwarder restarts on a recreated consumer, and
the ones already accepted are not sent again."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import asyncpg
import msgspec
import nats
import pytest

import connectors.forward.checkpoint as checkpoint_module
from connectors.fakelrs import FakeLrs
from connectors.forward.checkpoint import ForwardCheckpoint, is_replay
from connectors.forward.forwarder import Forwarder
from connectors.forward.logcheck import LogCheck
from connectors.forward.lowwater import LowWaterMark
from connectors.forward.model import ForwardFilter
from connectors.forward.run import ForwardOptions
from connectors.framework.sink import LrsSink
from lrs.service import forward_opener
from lrs.relay import Relay
from lrs.store import StatementWriter
from lrs.store.event_append import append_events
from lrs.store.log_reader import read_events_after
from tests.integration.test_anchors import write

pytestmark = pytest.mark.slow


def _opener(log_check: LogCheck) -> Any:
    """The opener `lrs forward` is given (these stores hold statements in clear)."""
    return forward_opener(log_check.pool, None)


async def test_a_statement_overtaken_while_awaiting_its_retry_is_forwarded_after_a_restart(
    pool: asyncpg.Pool, writer: StatementWriter, nats_control: Any, database_url: str
) -> None:
    await write(writer, 3)
    async with pool.acquire() as conn, conn.transaction():  # an event the forwarder's consumer never sees
        await append_events(conn, "default", "roster", [msgspec.json.encode({"learners": []})])
    await write(writer, 3)
    records = await read_events_after(pool, 0, 100)
    assert [r.event_type for r in records] == ["statement"] * 3 + ["roster"] + ["statement"] * 3
    statements = {r.position: str(r.statement_id) for r in records if r.event_type == "statement"}
    relay = Relay(pool, nats_control.url, batch_size=50, poll_interval=0.05)
    await relay.run(until_caught_up=True)
    await relay.stop()

    target = FakeLrs("target", "target-secret")
    target.fail_ids = {statements[2]}  # a 500 on position 2: retried in 30 s, the others go on
    await target.start()
    try:
        async with (LrsSink(target.url, "target", "target-secret", max_attempts=1) as sink,
                    LogCheck(database_url) as log_check):
            stop = asyncio.Event()
            first = Forwarder(nats_control.url, sink, ForwardFilter.of([], [], []),
                              ForwardOptions(name="lwm", retry_delay=30.0, fetch_timeout=0.2), log_check,
                              open_stored=_opener(log_check))
            running = asyncio.create_task(first.run(stop))
            for _ in range(300):
                if first.stats.forwarded >= 5 or running.done():
                    break
                await asyncio.sleep(0.05)
            stop.set()
            first_stats = await asyncio.wait_for(running, 30)
            after_first = Counter(target.received)
            row = await pool.fetchrow("SELECT position, done_above FROM forward_checkpoints WHERE name = 'lwm'")

            # The consumer is lost (deleted, recreated by the next run):
            # every message is delivered again as a first delivery.
            nc = await nats.connect(nats_control.url)
            try:
                await nc.jetstream().delete_consumer("LRS_EVENTS", "lwm")
            finally:
                await nc.close()
            target.fail_ids = set()
            second = Forwarder(nats_control.url, sink, ForwardFilter.of([], [], []),
                               ForwardOptions(name="lwm", until_caught_up=True, fetch_timeout=0.2), log_check,
                              open_stored=_opener(log_check))
            second_stats = await asyncio.wait_for(second.run(), 60)
            final = await pool.fetchrow("SELECT position, done_above FROM forward_checkpoints WHERE name = 'lwm'")
    finally:
        await target.close()
    assert first_stats.forwarded == 5 and first_stats.retried == 1
    # History: the target holds every statement of the log, and the second
    # run sent only the one the first never got accepted.
    assert set(target.statements) == set(statements.values())
    assert Counter(target.received) - after_first == Counter({statements[2]: 1})
    assert second_stats.forwarded == 1 and second_stats.replayed == 5
    # The mark: 1 done, 2 not, 3..7 done (4, the roster event, from the log).
    assert (row["position"], list(row["done_above"])) == (1, [3, 7])
    assert (final["position"], list(final["done_above"])) == (7, [])


async def test_the_mark_fills_in_the_events_that_are_not_statements_from_the_log(
    pool: asyncpg.Pool, writer: StatementWriter
) -> None:
    """Statements at 1, 4, 5 and 7, roster events at 2, 3 and 6: the
    consumer delivers only the statements, and the log fills in the rest."""
    roster = [msgspec.json.encode({"learners": []})]
    await write(writer, 1)
    async with pool.acquire() as conn, conn.transaction():
        await append_events(conn, "default", "roster", roster * 2)
    await write(writer, 2)
    async with pool.acquire() as conn, conn.transaction():
        await append_events(conn, "default", "roster", roster)
    await write(writer, 1)
    checkpoint = ForwardCheckpoint(pool, "fill")
    assert (await checkpoint.load()) == LowWaterMark() and checkpoint.fresh
    checkpoint.start_at(1)
    for position in (5, 7):
        checkpoint.mark.record(position)
    await checkpoint.save()
    assert checkpoint.mark == LowWaterMark(0, [(2, 3), (5, 7)])
    checkpoint.mark.record(1)
    await checkpoint.save()
    again = ForwardCheckpoint(pool, "fill")
    assert (await again.load()) == LowWaterMark(3, [(5, 7)]) and not again.fresh
    assert not is_replay(4, 1, again.mark) and is_replay(6, 1, again.mark)
    again.mark.record(4)
    await again.save()
    assert await pool.fetchrow("SELECT position, done_above FROM forward_checkpoints WHERE name = 'fill'") == (7, [])


async def test_a_new_forwarder_starts_at_the_first_event_delivered(pool: asyncpg.Pool) -> None:
    """A consumer created with --deliver new (or on a stream that no longer
    holds the first events) never delivers the positions before its first."""
    checkpoint = ForwardCheckpoint(pool, "new")
    await checkpoint.load()
    checkpoint.start_at(40)
    checkpoint.mark.record(41)
    checkpoint.start_at(30)  # only the first delivery starts the mark
    assert checkpoint.mark == LowWaterMark(39, [(41, 41)])


async def test_the_row_stays_bounded_by_forgetting_the_lowest_runs(
    pool: asyncpg.Pool, writer: StatementWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(checkpoint_module, "MAX_RUNS", 1)
    await write(writer, 5)
    checkpoint = ForwardCheckpoint(pool, "bounded")
    await checkpoint.load()
    checkpoint.start_at(1)
    for position in (3, 5):  # 1, 2 and 4 await their retries
        checkpoint.mark.record(position)
    await checkpoint.save()
    assert checkpoint.forgotten == 1
    row = await pool.fetchrow("SELECT position, done_above FROM forward_checkpoints WHERE name = 'bounded'")
    assert row == (0, [5, 5])
    assert not is_replay(3, 1, checkpoint.mark)  # sent again if it comes again


async def test_a_crash_before_the_first_checkpoint_loses_nothing(
    pool: asyncpg.Pool, writer: StatementWriter, nats_control: Any, database_url: str
) -> None:
    """No checkpoint row yet, but a consumer that delivered before: its first
    message now comes after one still awaiting its retry, so the mark does
    not start there, and the statement reaches the target after the consumer
    is recreated."""
    await write(writer, 4)
    relay = Relay(pool, nats_control.url, batch_size=50, poll_interval=0.05)
    await relay.run(until_caught_up=True)
    records = await read_events_after(pool, 0, 100)
    held = str(records[1].statement_id)
    target = FakeLrs("target", "target-secret")
    target.fail_ids = {held}
    await target.start()

    async def forward(sink: LrsSink, log_check: LogCheck, count: int, **options: Any) -> None:
        stop = asyncio.Event()
        forwarder = Forwarder(nats_control.url, sink, ForwardFilter.of([], [], []),
                              ForwardOptions(name="crash", fetch_timeout=0.2, **options), log_check,
                              open_stored=_opener(log_check))
        running = asyncio.create_task(forwarder.run(stop))
        for _ in range(300):
            if forwarder.stats.forwarded >= count or running.done():
                break
            await asyncio.sleep(0.05)
        stop.set()
        await asyncio.wait_for(running, 30)

    try:
        async with (LrsSink(target.url, "target", "target-secret", max_attempts=1) as sink,
                    LogCheck(database_url) as log_check):
            await forward(sink, log_check, 3, retry_delay=30.0)
            await pool.execute("DELETE FROM forward_checkpoints")  # it crashed before saving
            await write(writer, 2)
            await relay.run(until_caught_up=True)
            await forward(sink, log_check, 2, retry_delay=30.0)  # the same consumer: the 2 new ones first
            nc = await nats.connect(nats_control.url)
            try:
                await nc.jetstream().delete_consumer("LRS_EVENTS", "crash")
            finally:
                await nc.close()
            target.fail_ids = set()
            last = Forwarder(nats_control.url, sink, ForwardFilter.of([], [], []),
                             ForwardOptions(name="crash", until_caught_up=True, fetch_timeout=0.2), log_check,
                              open_stored=_opener(log_check))
            await asyncio.wait_for(last.run(), 60)
    finally:
        await relay.stop()
        await target.close()
    logged = {str(r.statement_id) for r in await read_events_after(pool, 0, 100)}
    assert set(target.statements) == logged
