"""Bus.publish_batch against a real nats-server: the fast path that asks for one
acknowledgement per batch must fall back whenever the count does not add up."""

from __future__ import annotations

import asyncio
import uuid

import nats
import pytest

from lrs.nats.bus import STREAM_NAME, Bus
from lrs.event_contract import OutgoingMessage


def _messages(count: int, ids: list[str] | None = None) -> list[OutgoingMessage]:
    ids = ids or [str(uuid.uuid4()) for _ in range(count)]
    return [
        OutgoingMessage("lrs.events.default.statement", b"{}", {"Nats-Msg-Id": msg_id, "Lrs-Position": str(i + 1)})
        for i, msg_id in enumerate(ids)
    ]


async def _stream_ids(url: str) -> list[str]:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        info = await js.stream_info(STREAM_NAME)
        ids = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            msg = await js.get_msg(STREAM_NAME, seq=seq)
            ids.append(msg.headers["Nats-Msg-Id"])
        return ids
    finally:
        await nc.close()


@pytest.fixture
async def bus(nats_control):
    bus = Bus(nats_control.url)
    await bus.connect()
    await bus.ensure_stream()
    await bus.last_position()  # learns the stream's last sequence: enables the fast path
    yield bus
    await bus.close()


async def test_batches_are_stored_once_each(bus, nats_control):
    first, second = _messages(50), _messages(50)
    assert (await bus.publish_batch(first)).stored == 50
    assert (await bus.publish_batch(second)).stored == 50
    ids = await _stream_ids(nats_control.url)
    assert ids == [m.headers["Nats-Msg-Id"] for m in first + second]


async def test_another_publisher_forces_the_acknowledged_path(bus, nats_control):
    await bus.publish_batch(_messages(10))
    nc = await nats.connect(nats_control.url)
    await nc.jetstream().publish("lrs.events.default.statement", b"{}", headers={"Nats-Msg-Id": "foreign"})
    await nc.close()
    batch = _messages(10)
    result = await bus.publish_batch(batch)
    # The fast path's count is off by the foreign message: the batch went again,
    # acknowledged message by message, and the stream dropped the repeats.
    assert result.stored + result.duplicates == 10
    ids = await _stream_ids(nats_control.url)
    assert len(ids) == 21 and len(set(ids)) == 21
    assert ids[-10:] == [m.headers["Nats-Msg-Id"] for m in batch]


async def test_a_republished_batch_reports_its_duplicates(bus, nats_control):
    ids = [str(uuid.uuid4()) for _ in range(20)]
    await bus.publish_batch(_messages(20, ids))
    again = await bus.publish_batch(_messages(20, ids) + _messages(5))
    assert again.duplicates >= 20
    stored = await _stream_ids(nats_control.url)
    assert len(stored) == 25 and len(set(stored)) == 25


async def test_a_client_that_stopped_reconnecting_is_replaced(nats_control):
    bus = Bus(nats_control.url, reconnect_wait=0.2)
    await bus.connect()
    try:
        nats_control.kill()
        for _ in range(100):
            if bus._nc is not None and bus._nc._reconnection_task is not None:
                break
            await asyncio.sleep(0.05)
        # nats-py's reconnect loop ends for good on an error it does not expect
        # (seen: uvloop's RuntimeError on a transport closed under it); end it.
        bus._nc._reconnection_task.cancel()
        await nats_control.start()
        await asyncio.sleep(1.5)
        assert not bus.connected  # that client does not come back by itself
        assert not await bus.replace_stalled_client(after_s=60)  # not disconnected that long yet
        assert await bus.replace_stalled_client(after_s=1)
        assert await bus.wait_connected(15)
        await bus.ensure_stream()
        assert (await bus.publish_batch(_messages(3))).stored == 3
    finally:
        await bus.close()
