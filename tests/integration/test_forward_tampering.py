"""lrs forward sends only the log's statements: forged, altered and replayed
messages published straight to the stream are refused and counted, and the
log's statement at an altered message's position is sent in its place."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import msgspec
import nats
import pytest

from connectors.fakelrs import FakeLrs
from connectors.forward.forwarder import ForwardOptions, Forwarder
from connectors.forward.logcheck import LogCheck
from connectors.forward.model import ForwardFilter
from connectors.framework.sink import LrsSink
from lrs.nats.bus import Bus
from lrs.event_contract import OutgoingMessage
from lrs.event_contract import event_message
from lrs.relay import Relay
from lrs.store import StatementWriter
from lrs.store.log_reader import read_events_after
from tests.integration.test_anchors import write
from tests.integration.test_projection_tampering import forged_after, publish

pytestmark = pytest.mark.slow


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
                ForwardOptions(name="checked", until_caught_up=True), log_check,
            )
            stats = await asyncio.wait_for(forwarder.run(), 60)
    finally:
        await target.close()
    logged = {str(r.statement_id): msgspec.json.decode(r.payload) for r in records}
    assert set(target.statements) == set(logged)
    assert target.statements[str(records[1].statement_id)]["actor"] == {"mbox": "mailto:l1@example.gov.vn"}
    assert stats.refused == 3 and stats.forwarded >= len(records)


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
                ForwardOptions(name="huge", until_caught_up=True), log_check,
            )
            stats = await asyncio.wait_for(forwarder.run(), 60)
    finally:
        await target.close()
    assert set(target.statements) == {str(r.statement_id) for r in records}
    assert stats.refused == 1
