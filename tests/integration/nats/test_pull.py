"""PullConsumer against a real nats-server with JetStream: batches in stream
order, nothing dropped between fetches, unacknowledged messages redelivered."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import AsyncIterator

import nats
import pytest
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import api

from lrs.nats.pull import PullConsumer, PullRefused


@pytest.fixture
async def stream(nats_url: str) -> AsyncIterator[tuple[NatsClient, str]]:
    nc = await nats.connect(nats_url)
    name = f"PULL_{uuid.uuid4().hex[:8]}"
    js = nc.jetstream()
    await js.add_stream(name=name, subjects=[f"{name.lower()}.>"])
    try:
        yield nc, name
    finally:
        await js.delete_stream(name)
        await nc.close()


async def _publish(nc: NatsClient, stream: str, count: int, start: int = 0) -> None:
    js = nc.jetstream()
    for i in range(start, start + count):
        await js.publish(f"{stream.lower()}.e", str(i).encode(), headers={"Lrs-Position": str(i + 1)})


async def _consumer(nc: NatsClient, stream: str, ack_wait: float = 30.0) -> PullConsumer:
    durable = "c" + uuid.uuid4().hex[:8]
    await nc.jetstream().add_consumer(
        stream, api.ConsumerConfig(durable_name=durable, ack_policy=api.AckPolicy.EXPLICIT, ack_wait=ack_wait)
    )
    pull = PullConsumer(nc, stream, durable)
    await pull.start()
    return pull


async def _redelivered(pull: PullConsumer, batch: int) -> list[Msg]:
    """The first messages fetched within 10 s (those not acknowledged come
    back after their ack wait)."""
    again: list[Msg] = []
    deadline = time.monotonic() + 10
    while not again and time.monotonic() < deadline:
        again = await pull.fetch(batch, timeout=0.5)
    return again


async def test_batches_come_in_stream_order_and_none_is_lost_or_repeated(stream: tuple[NatsClient, str]) -> None:
    nc, name = stream
    await _publish(nc, name, 250)
    pull = await _consumer(nc, name)
    seen: list[int] = []
    while len(seen) < 250:
        batch = await pull.fetch(100, timeout=10.0)  # messages wait: it returns as soon as they come
        assert batch, "messages are waiting, a fetch must return some"
        assert len(batch) <= 100
        for msg in batch:
            seen.append(int(msg.data))
            await msg.ack()
    assert seen == list(range(250))
    assert await pull.fetch(100, timeout=0.2) == []
    await pull.close()


async def test_an_empty_fetch_waits_for_the_first_message_and_no_longer(stream: tuple[NatsClient, str]) -> None:
    nc, name = stream
    pull = await _consumer(nc, name)
    started = time.monotonic()
    assert await pull.fetch(10, timeout=0.3) == []
    assert 0.25 <= time.monotonic() - started < 10.0  # its timeout, then it returns (the bound: a loaded machine)

    async def later() -> None:
        await asyncio.sleep(0.2)
        await _publish(nc, name, 3)

    publishing = asyncio.ensure_future(later())
    started = time.monotonic()
    batch = await pull.fetch(10, timeout=30.0)
    waited = time.monotonic() - started
    await publishing
    assert batch and int(batch[0].data) == 0
    # 0.2 s and a delivery, however loaded the machine, are far from half the timeout
    assert waited < 15.0, "a fetch returns with the first messages, not after its whole timeout"
    # what the open request delivers afterwards stays for the next fetch
    rest = [int(m.data) for m in batch]
    deadline = time.monotonic() + 5  # well within the ack wait: nothing may come back by redelivery
    while len(rest) < 3 and time.monotonic() < deadline:
        rest += [int(m.data) for m in await pull.fetch(10, timeout=1.0)]
    assert rest == [0, 1, 2]
    await pull.close()


async def test_an_unacknowledged_message_comes_again(stream: tuple[NatsClient, str]) -> None:
    nc, name = stream
    await _publish(nc, name, 2)
    pull = await _consumer(nc, name, ack_wait=1.0)
    first = await pull.fetch(2, timeout=10.0)
    assert [int(m.data) for m in first] == [0, 1]
    await first[1].ack()  # the first is never acknowledged
    assert [int(m.data) for m in await _redelivered(pull, 2)] == [0]
    await pull.close()


async def test_messages_acknowledged_together_are_all_acknowledged(stream: tuple[NatsClient, str]) -> None:
    nc, name = stream
    await _publish(nc, name, 60)
    pull = await _consumer(nc, name, ack_wait=1.0)
    batch = await pull.fetch(60, timeout=10.0)
    assert [int(m.data) for m in batch] == list(range(60))
    await pull.ack_all(batch[:25] + batch[26:])  # all but the 26th, in one write and a last ack
    await pull.ack_all([])
    again = await _redelivered(pull, 60)
    assert [int(m.data) for m in again] == [25]  # after its ack wait, only the one left out comes back
    await pull.ack_all(again)
    durable = pull._subject.rsplit(".", 1)[1]
    deadline = time.monotonic() + 5
    while (await nc.jetstream().consumer_info(name, durable)).num_ack_pending and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert (await nc.jetstream().consumer_info(name, durable)).num_ack_pending == 0
    await pull.close()


async def test_a_refused_request_raises_instead_of_returning_nothing_at_once(stream: tuple[NatsClient, str]) -> None:
    # A deleted consumer answers every request with a status at once; a fetch
    # that returned [] would have its caller ask again in a tight loop.
    nc, name = stream
    await _publish(nc, name, 1)
    pull = await _consumer(nc, name)
    durable = pull._subject.rsplit(".", 1)[-1]
    await nc.jetstream().delete_consumer(name, durable)
    with pytest.raises(PullRefused) as refused:
        await pull.fetch(10, timeout=2.0)
    assert refused.value.status not in {"404", "408", "100"}
    await pull.close()


async def test_closing_gives_back_what_was_received_but_not_fetched(stream: tuple[NatsClient, str]) -> None:
    nc, name = stream
    await _publish(nc, name, 5)
    pull = await _consumer(nc, name)  # ack wait 30 s: only the nak can bring them back sooner
    first = await pull.fetch(2, timeout=10.0)  # the request asked for 2; ask for more to fill the buffer
    assert [int(m.data) for m in first] == [0, 1]
    for msg in first:
        await msg.ack()
    await pull._request(3, {"no_wait": True}, 3, 10.0)  # three arrive in the buffer, unfetched
    assert len(pull._buffer) == 3
    await pull.close()
    again = PullConsumer(nc, name, pull._subject.rsplit(".", 1)[-1])
    await again.start()
    started = time.monotonic()
    received: list[int] = []
    while len(received) < 3 and time.monotonic() - started < 10:
        received += [int(m.data) for m in await again.fetch(10, timeout=0.5)]
    assert received == [2, 3, 4]
    assert time.monotonic() - started < 10
    await again.close()


async def test_the_consumers_messages_are_taken_as_the_client_reads_them(stream: tuple[NatsClient, str]) -> None:
    """Its messages skip nats-py's per-message dispatch (a queue and a task
    per subscription), headers parsed, in order; another subscription on the
    same client still gets its own messages through nats-py, and closing
    gives the client its own dispatch back."""
    nc, name = stream
    own_dispatch = nc._process_msg
    pull = await _consumer(nc, name)
    assert nc._process_msg != own_dispatch, "the consumer does not take its messages directly"
    assert pull._sub is not None
    queued = pull._sub._pending_queue
    others: asyncio.Queue[Msg] = asyncio.Queue()
    await nc.subscribe(f"other.{name}", cb=others.put)
    await _publish(nc, name, 30)
    await nc.publish(f"other.{name}", b"x", headers={"Lrs-Position": "5"})
    in_before = nc.stats["in_msgs"]
    got = await pull.fetch(30, timeout=10.0)
    assert [int(m.data) for m in got] == list(range(30))
    assert [m.headers for m in got] == [{"Lrs-Position": str(i + 1)} for i in range(30)]
    assert queued.qsize() == 0 and pull._sub._received == 0, "the messages went through the subscription's queue"
    assert nc.stats["in_msgs"] >= in_before + 30
    other = await asyncio.wait_for(others.get(), 5)
    assert (other.data, other.headers) == (b"x", {"Lrs-Position": "5"})
    await pull.ack_all(got)
    assert await pull.fetch(10, timeout=0.2) == []  # the end of a request (a status) still ends the wait
    await pull.close()
    assert nc._process_msg == own_dispatch


async def test_two_consumers_on_one_client_each_take_their_own(stream: tuple[NatsClient, str]) -> None:
    nc, name = stream
    first = await _consumer(nc, name)
    second = await _consumer(nc, name)
    await _publish(nc, name, 5)
    assert [int(m.data) for m in await first.fetch(5, timeout=10.0)] == list(range(5))
    await first.close()  # the second's wrapper stays in place
    assert [int(m.data) for m in await second.fetch(5, timeout=10.0)] == list(range(5))
    assert second._sub is not None and second._sub._received == 0
    await second.close()
