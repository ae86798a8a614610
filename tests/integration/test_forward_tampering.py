"""lrs forward sends only the log's statements: forged, altered and replayed
messages published straight to the stream are refused, counted and not
sent; the log's statement at an altered message's position is sent once,
with its own message or read from the log."""

from __future__ import annotations

import asyncio
import uuid
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
from lrs.service import forward_opener
from lrs.nats.bus import Bus
from lrs.event_contract import OutgoingMessage
from lrs.event_contract import event_message
from lrs.relay import Relay
from lrs.store import StatementWriter
from lrs.store.log_reader import read_events_after
from tests.integration.test_anchors import write
from tests.integration.test_projection_tampering import forged_after, publish

pytestmark = pytest.mark.slow


def _opener(log_check: LogCheck) -> Any:
    """The opener `lrs forward` is given (these stores hold statements in clear)."""
    return forward_opener(log_check.pool, None)


async def test_forged_and_altered_messages_are_not_forwarded(
    pool: asyncpg.Pool, writer: StatementWriter, nats_control: Any, database_url: str
) -> None:
    await write(writer, 6)
    records = await read_events_after(pool, 0, 100)
    genuine = [event_message(r) for r in records]
    intruder = {"id": str(uuid.uuid4()), "actor": {"mbox": "mailto:intruder@example.gov.vn"},
                "verb": {"id": "http://adlnet.gov/expapi/verbs/passed"},
                "object": {"id": "https://mooc.example.gov.vn/units/x"}}
    forged = forged_after(records[-1], msgspec.json.encode(intruder))  # beyond the head
    altered = OutgoingMessage(genuine[1].subject, genuine[1].data.replace(b"mailto:l1@", b"mailto:evil@"),
                              genuine[1].headers)  # takes the real event's id: the relay's copy is then a duplicate
    replayed = OutgoingMessage(genuine[0].subject, genuine[0].data,
                               {**genuine[0].headers, "Nats-Msg-Id": str(uuid.uuid4())})
    bus = Bus(nats_control.url)
    await bus.connect()
    await bus.ensure_stream()
    await bus.close()
    await publish(nats_control.url, [forged, altered, replayed])
    relay = Relay(pool, nats_control.url, batch_size=50, poll_interval=0.05)
    await relay.run(until_caught_up=True)
    await relay.stop()

    target = FakeLrs("target", "target-secret")
    await target.start()
    try:
        async with LrsSink(target.url, "target", "target-secret") as sink, LogCheck(database_url) as log_check:
            forwarder = Forwarder(
                nats_control.url, sink, ForwardFilter.of([], [], []),
                ForwardOptions(name="checked", until_caught_up=True), log_check, open_stored=_opener(log_check),
            )
            stats = await asyncio.wait_for(forwarder.run(), 60)
    finally:
        await target.close()
    logged = {str(r.statement_id): msgspec.json.decode(r.payload) for r in records}
    assert set(target.statements) == set(logged)
    assert target.statements[str(records[1].statement_id)]["actor"] == {"mbox": "mailto:l1@example.gov.vn"}
    assert stats.refused == 3 and stats.forwarded == len(records)
    assert sorted(target.received.values()) == [1] * len(records), target.received  # each sent once
    # The stream dropped the relay's message at position 2 (the altered one
    # took its id): nothing was sent for the altered one, and as the stream
    # never delivers position 2 again, the forwarder read it from the log
    # (connectors.forward.logfill): the mark closes.
    assert stats.from_log == 1
    row = await pool.fetchrow("SELECT position, done_above FROM forward_checkpoints WHERE name = 'checked'")
    assert (row["position"], list(row["done_above"])) == (6, [])


async def test_a_position_beyond_bigint_is_refused_and_forwarding_goes_on(
    pool: asyncpg.Pool, writer: StatementWriter, nats_control: Any, database_url: str
) -> None:
    """Asking PostgreSQL for a position past 2^63 - 1 raised and stopped the forwarder."""
    await write(writer, 3)
    records = await read_events_after(pool, 0, 100)
    bus = Bus(nats_control.url)
    await bus.connect()
    await bus.ensure_stream()
    await bus.close()
    forged = forged_after(records[-1], b"{}")
    await publish(nats_control.url, [OutgoingMessage(forged.subject, forged.data,
                                                     {**forged.headers, "Lrs-Position": str(2**64)})])
    relay = Relay(pool, nats_control.url, batch_size=50, poll_interval=0.05)
    await relay.run(until_caught_up=True)
    await relay.stop()
    target = FakeLrs("target", "target-secret")
    await target.start()
    try:
        async with LrsSink(target.url, "target", "target-secret") as sink, LogCheck(database_url) as log_check:
            forwarder = Forwarder(
                nats_control.url, sink, ForwardFilter.of([], [], []),
                ForwardOptions(name="huge", until_caught_up=True), log_check, open_stored=_opener(log_check),
            )
            stats = await asyncio.wait_for(forwarder.run(), 60)
    finally:
        await target.close()
    assert set(target.statements) == {str(r.statement_id) for r in records}
    assert stats.refused == 1


async def test_a_replayed_message_reaches_the_target_once(
    pool: asyncpg.Pool, writer: StatementWriter, nats_control: Any, database_url: str
) -> None:
    """Copies of events already forwarded, published straight to the stream
    while the forwarder runs (the same position again, and an older one),
    are not sent on: the forwarder's checkpoint in PostgreSQL names them."""
    await write(writer, 5)
    relay = Relay(pool, nats_control.url, batch_size=50, poll_interval=0.05)
    await relay.start()
    target = FakeLrs("target", "target-secret")
    await target.start()
    stop = asyncio.Event()
    try:
        async with LrsSink(target.url, "target", "target-secret") as sink, LogCheck(database_url) as log_check:
            forwarder = Forwarder(nats_control.url, sink, ForwardFilter.of([], [], []),
                                  ForwardOptions(name="once", fetch_timeout=0.2), log_check,
                              open_stored=_opener(log_check))
            running = asyncio.create_task(forwarder.run(stop))

            async def target_holds(count: int) -> None:
                for _ in range(300):
                    if len(target.statements) >= count:
                        return
                    await asyncio.sleep(0.05)
                raise AssertionError(f"the target holds {len(target.statements)} statements, not {count}")

            await target_holds(5)
            records = await read_events_after(pool, 0, 100)
            last, older = event_message(records[-1]), event_message(records[1])
            # The stream drops a copy with the same Nats-Msg-Id (its duplicate
            # window); copies under a new id, or none, are stored and delivered.
            await publish(nats_control.url, [
                OutgoingMessage(last.subject, last.data, {**last.headers, "Nats-Msg-Id": str(uuid.uuid4())}),
                OutgoingMessage(older.subject, older.data, {k: v for k, v in older.headers.items() if k != "Nats-Msg-Id"}),
            ])
            await write(writer, 1)  # a new event after the copies: forwarded once they were dealt with
            await target_holds(6)
            stop.set()
            stats = await asyncio.wait_for(running, 30)
            checkpoint = await pool.fetchval("SELECT position FROM forward_checkpoints WHERE name = 'once'")
    finally:
        stop.set()
        await relay.stop()
        await target.close()
    assert stats.replayed == 2 and stats.forwarded == 6
    assert sorted(target.received.values()) == [1] * 6, target.received
    assert checkpoint == 6


async def test_a_forged_message_naming_a_later_position_makes_the_forwarder_skip_nothing(
    pool: asyncpg.Pool, writer: StatementWriter, nats_control: Any, database_url: str
) -> None:
    """An altered copy of a later event, on the stream before the events
    ahead of it: refused, and nothing sent for it; the checkpoint does not
    move past the events not yet delivered, so none is taken for a replay,
    and the log's event goes once, with its own message."""
    await write(writer, 6)
    records = await read_events_after(pool, 0, 100)
    genuine = event_message(records[4])
    altered = OutgoingMessage(genuine.subject, genuine.data.replace(b"mailto:l4@", b"mailto:evil@"),
                              {**genuine.headers, "Nats-Msg-Id": str(uuid.uuid4())})
    bus = Bus(nats_control.url)
    await bus.connect()
    await bus.ensure_stream()
    await bus.close()
    await publish(nats_control.url, [altered])
    relay = Relay(pool, nats_control.url, batch_size=50, poll_interval=0.05)
    await relay.run(until_caught_up=True)
    await relay.stop()
    target = FakeLrs("target", "target-secret")
    await target.start()
    try:
        async with LrsSink(target.url, "target", "target-secret") as sink, LogCheck(database_url) as log_check:
            forwarder = Forwarder(nats_control.url, sink, ForwardFilter.of([], [], []),
                                  ForwardOptions(name="ordered", batch_size=1, until_caught_up=True), log_check,
                              open_stored=_opener(log_check))
            stats = await asyncio.wait_for(forwarder.run(), 60)
    finally:
        await target.close()
    assert set(target.statements) == {str(r.statement_id) for r in records}
    assert target.statements[str(records[4].statement_id)]["actor"]["mbox"] == "mailto:l4@example.gov.vn"
    assert stats.refused == 1 and stats.replayed == 0
    assert sorted(target.received.values()) == [1] * len(records), target.received  # once, not also in its place
