"""LRS_EVENTS's retention against a real nats-server: a message is kept until
every durable consumer that selects it acknowledged it (interest), at most
``max_age``; an existing stream of an older version (limits: everything for
30 days) becomes one in place, keeping its messages."""

from __future__ import annotations

from typing import Any, AsyncIterator

import nats
import pytest
from nats.js import api

from connectors.forward.definitions import consumer_config as forward_consumer
from lrs.event_contract import OutgoingMessage
from lrs.nats.bus import STREAM_NAME, Bus, load_consumer_config, load_stream_config
from lrs.nats.permissions import projection_consumer
from tests.conftest import HISTORY_CONSUMER

PROJECTION = projection_consumer("competency")


def _message(position: int, event_type: str = "statement") -> OutgoingMessage:
    return OutgoingMessage(f"lrs.events.default.{event_type}", b'{"n": %d}' % position,
                           {"Nats-Msg-Id": f"event-{position}", "Lrs-Position": str(position)})


@pytest.fixture
async def bus(nats_control: Any) -> AsyncIterator[Bus]:
    """The stream as its definition makes it, with no consumer yet."""
    bus = Bus(nats_control.url)
    await bus.connect()
    await bus._jetstream().delete_consumer(STREAM_NAME, HISTORY_CONSUMER)
    await bus.ensure_stream()
    yield bus
    await bus.close()


async def _state(bus: Bus) -> api.StreamState:
    return (await bus._jetstream().stream_info(STREAM_NAME)).state


async def _ack(nats_url: str, durable: str, count: int) -> list[int]:
    """Pull ``count`` messages as consumer ``durable`` and acknowledge them;
    their positions."""
    nc = await nats.connect(nats_url)
    try:
        sub = await nc.jetstream().pull_subscribe_bind(durable, STREAM_NAME)
        messages = await sub.fetch(count, timeout=5)
        for msg in messages:
            await msg.ack_sync()
        return [int(msg.headers["Lrs-Position"]) for msg in messages]
    finally:
        await nc.close()


async def test_the_definition_keeps_messages_for_their_consumers_at_most_30_days() -> None:
    definition = load_stream_config()
    assert definition.retention == api.RetentionPolicy.INTEREST
    assert definition.max_age == 30 * 24 * 3600 and definition.compression == api.StoreCompression.S2


async def test_a_message_goes_once_every_consumer_that_selects_it_acknowledged_it(bus: Bus, nats_control: Any) -> None:
    await bus.ensure_consumer(load_consumer_config(durable_name=PROJECTION))
    await bus._jetstream().add_consumer(STREAM_NAME, forward_consumer("forward"))  # statements only
    await bus.publish_batch([_message(1), _message(2, "roster"), _message(3)])
    assert (await _state(bus)).messages == 3

    assert await _ack(nats_control.url, PROJECTION, 3) == [1, 2, 3]
    state = await _state(bus)
    # The roster event is selected by the projection only: gone; the statements wait for the forwarder.
    assert (state.messages, state.first_seq) == (2, 1)
    assert await bus.last_position() == 3

    assert await _ack(nats_control.url, "forward", 1) == [1]
    assert (await _state(bus)).messages == 1
    assert await _ack(nats_control.url, "forward", 1) == [3]
    state = await _state(bus)
    assert (state.messages, state.last_seq) == (0, 3)
    assert await bus.last_position() is None  # held up to somewhere: the relay resumes after its checkpoint


async def test_a_consumer_that_lags_or_is_offline_keeps_its_messages(bus: Bus, nats_control: Any) -> None:
    await bus.ensure_consumer(load_consumer_config(durable_name=PROJECTION))
    await bus._jetstream().add_consumer(STREAM_NAME, forward_consumer("offline"))  # never connected
    await bus.publish_batch([_message(n) for n in range(1, 6)])
    await _ack(nats_control.url, PROJECTION, 5)
    assert (await _state(bus)).messages == 5

    await nats_control.stop()  # kept across a restart of the server too
    await nats_control.start()
    await bus.wait_connected(10)
    assert (await _state(bus)).messages == 5
    assert await _ack(nats_control.url, "offline", 5) == [1, 2, 3, 4, 5]
    assert (await _state(bus)).messages == 0


async def test_with_no_consumer_nothing_is_kept_and_repeats_are_still_dropped(bus: Bus) -> None:
    result = await bus.publish_batch([_message(1), _message(2)])
    assert result.stored == 2
    state = await _state(bus)
    assert (state.messages, state.last_seq) == (0, 2)
    again = await bus.publish_batch([_message(1), _message(2)])  # the relay republishing after a crash
    assert (again.stored, again.duplicates) == (0, 2)
    assert (await _state(bus)).last_seq == 2


async def test_the_last_message_gone_while_earlier_ones_stay_reads_as_held(bus: Bus, nats_control: Any) -> None:
    await bus.ensure_consumer(load_consumer_config(durable_name=PROJECTION))
    await bus._jetstream().add_consumer(STREAM_NAME, forward_consumer("forward"))
    await bus.publish_batch([_message(1), _message(2, "roster")])
    await _ack(nats_control.url, PROJECTION, 2)
    state = await _state(bus)
    assert (state.messages, state.last_seq) == (1, 2)  # the statement waits for the forwarder; the last is gone
    assert await bus.last_position() is None  # not a NotFoundError that stopped every resync


async def test_a_stream_of_an_older_version_becomes_interest_in_place_keeping_its_messages(nats_control: Any) -> None:
    definition = load_stream_config()
    bus = Bus(nats_control.url)
    await bus.connect()
    try:
        js = bus._jetstream()
        await js.delete_stream(STREAM_NAME)
        await js.add_stream(definition.evolve(retention=api.RetentionPolicy.LIMITS))  # as versions before it
        await bus.ensure_consumer(load_consumer_config(durable_name=PROJECTION))
        await bus.publish_batch([_message(n) for n in range(1, 5)])
        await _ack(nats_control.url, PROJECTION, 2)
        assert (await _state(bus)).messages == 4  # limits: acknowledged or not, kept

        info = await bus.ensure_stream(update=False)  # the relay's: left as it is, an alert
        assert info.config.retention == api.RetentionPolicy.LIMITS
        info = await bus.ensure_stream()  # the set-up's, as admin: in place
        assert info.config.retention == api.RetentionPolicy.INTEREST
        # What every consumer acknowledged goes at once; what one still needs stays.
        assert (info.state.messages, info.state.first_seq, info.state.last_seq) == (2, 3, 4)
        assert await _ack(nats_control.url, PROJECTION, 2) == [3, 4]
        assert (await _state(bus)).messages == 0
    finally:
        await bus.close()
