"""The competency projection runner following JetStream (real nats-server
and PostgreSQL): restarts, its pace and batch sizes, a lost consumer or client."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import asyncpg
import nats
import nats.js.errors
import pytest

from lrs.nats.bus import STREAM_NAME
from lrs.relay import Relay
from lrs.store import StatementWriter
from lrs.store.checkpoints import get_checkpoint
from lrs.store.log_reader import last_position
from projections.competency.store import CompetencyProjection, digest
from projections.replay import replay
import projections.runner
from projections.jetstream_loop import next_batch_size
from projections.runner import ProjectionRunner
from tests.integration.competency_statements import CATALOG, MODULES, PASSED, course_statement, voiding, write


@pytest.mark.slow
async def test_through_jetstream_with_a_restart_mid_stream_gives_the_replayed_digest(
    pool: asyncpg.Pool, writer: StatementWriter, nats_control: Any
) -> None:
    relay = Relay(pool, nats_control.url, batch_size=50, poll_interval=0.05)
    await relay.start()
    runner = ProjectionRunner(pool, CompetencyProjection(CATALOG))
    outcomes: list[int] = []

    async def consume_until(position: int) -> None:
        stop = asyncio.Event()

        def seen(outcome: Any) -> None:
            outcomes.append(outcome.checkpoint)
            if outcome.checkpoint >= position:
                stop.set()

        await asyncio.wait_for(runner.run(nats_control.url, stop, batch_size=20, fetch_timeout=0.2, on_batch=seen), 60)

    try:
        rng = random.Random(5)
        first = [course_statement(rng.randrange(5), *rng.choice(MODULES), rng.randrange(2000)) for _ in range(40)]
        await write(writer, *first)
        relay.notify()
        await consume_until(20)  # stops after some batch at or past 20: mid-stream
        stopped_at = await runner.checkpoint()
        assert 20 <= stopped_at <= 40
        second = [course_statement(rng.randrange(5), *rng.choice(MODULES), rng.randrange(2000)) for _ in range(30)]
        await write(writer, *second, voiding(first[3]["id"]))
        relay.notify()
        await consume_until(71)
        assert await runner.checkpoint() == 71 == await last_position(pool)
    finally:
        await relay.stop()
    live = await digest(pool)
    await replay(pool, CompetencyProjection(CATALOG))
    assert await digest(pool) == live


@pytest.mark.slow
@pytest.mark.parametrize("interval", [0.0, 0.4])
async def test_a_runner_that_keeps_up_pauses_between_batches(
    pool: asyncpg.Pool, writer: StatementWriter, nats_control: Any, interval: float
) -> None:
    # Statements trickle in one by one; without a pause every few events would
    # be a transaction of their own.  With one, a batch takes what arrived
    # during the pause: the batches are at most one per interval (and one
    # more for the first statement), and every statement still gets applied.
    relay = Relay(pool, nats_control.url, batch_size=50, poll_interval=0.02)
    await relay.start()
    runner = ProjectionRunner(pool, CompetencyProjection(CATALOG))
    stop = asyncio.Event()
    batches: list[int] = []

    def seen(outcome: Any) -> None:
        batches.append(outcome.checkpoint)
        if outcome.checkpoint >= 31:
            stop.set()

    consuming = asyncio.ensure_future(
        runner.run(nats_control.url, stop, batch_size=1000, fetch_timeout=0.2, on_batch=seen, batch_interval=interval)
    )
    try:
        await write(writer, course_statement(0, *MODULES[0], 0))  # the runner is consuming once this is applied
        relay.notify()
        for _ in range(200):
            if batches:
                break
            await asyncio.sleep(0.05)
        batches.clear()
        started = asyncio.get_running_loop().time()
        for n in range(1, 31):
            await write(writer, course_statement(n % 5, *MODULES[n % len(MODULES)], n))
            relay.notify()
            await asyncio.sleep(0.04)
        await asyncio.wait_for(consuming, 30)
        took = asyncio.get_running_loop().time() - started
    finally:
        stop.set()
        await relay.stop()
    assert await runner.checkpoint() == 31
    paused_bound = took / 0.4 + 2  # at most one batch per pause, and one more
    if interval:
        assert len(batches) <= paused_bound, batches
    else:  # without a pause the trickle itself makes more batches than a pause allows
        assert len(batches) > paused_bound, batches


async def test_a_runner_behind_fetches_ever_larger_batches_up_to_its_largest(
    pool: asyncpg.Pool, writer: StatementWriter, nats_control: Any
) -> None:
    # A backlog waits in the stream before the runner starts: each full fetch
    # is followed by one twice as large (10, 20, 40), then 40 at most.
    relay = Relay(pool, nats_control.url, batch_size=50, poll_interval=0.02)
    await relay.start()
    runner = ProjectionRunner(pool, CompetencyProjection(CATALOG))
    stop = asyncio.Event()
    applied: list[int] = []
    try:
        rng = random.Random(11)
        await write(writer, *(course_statement(rng.randrange(5), *rng.choice(MODULES), rng.randrange(2000)) for _ in range(110)))
        relay.notify()
        total = await last_position(pool)
        for _ in range(400):
            if await get_checkpoint(pool, relay.name) >= total:
                break
            await asyncio.sleep(0.02)

        def seen(outcome: Any) -> None:
            applied.append(outcome.applied)
            if outcome.checkpoint >= total:
                stop.set()

        await asyncio.wait_for(
            runner.run(nats_control.url, stop, batch_size=10, max_batch_size=40, fetch_timeout=1.0, on_batch=seen), 60
        )
    finally:
        stop.set()
        await relay.stop()
    assert applied == [10, 20, 40, 40], applied
    assert await runner.checkpoint() == total == 110


def test_the_next_fetch_doubles_after_a_full_one_and_starts_over_after_one_that_is_not() -> None:
    assert next_batch_size(1000, 1000, 1000, 5000) == 2000
    assert next_batch_size(4000, 4000, 1000, 5000) == 5000
    assert next_batch_size(5000, 5000, 1000, 5000) == 5000
    assert next_batch_size(4000, 3999, 1000, 5000) == 1000
    assert next_batch_size(1000, 1000, 1000, 1000) == 1000


@pytest.mark.slow
async def test_a_runner_whose_consumer_is_deleted_makes_it_again_and_carries_on(
    pool: asyncpg.Pool, writer: StatementWriter, nats_control: Any
) -> None:
    relay = Relay(pool, nats_control.url, batch_size=50, poll_interval=0.02)
    await relay.start()
    runner = ProjectionRunner(pool, CompetencyProjection(CATALOG))
    stop = asyncio.Event()
    target = [5]

    def seen(outcome: Any) -> None:
        if outcome.checkpoint >= target[0]:
            stop.set()

    nc = await nats.connect(nats_control.url)
    try:
        await write(writer, *(course_statement(n, *MODULES[n], n) for n in range(5)))
        relay.notify()
        await asyncio.wait_for(runner.run(nats_control.url, stop, fetch_timeout=0.2, retry_delay=0.2, on_batch=seen), 30)
        await nc.jetstream().delete_consumer(STREAM_NAME, "projection-competency")
        stop.clear()
        target[0] = 10
        consuming = asyncio.ensure_future(
            runner.run(nats_control.url, stop, fetch_timeout=0.2, retry_delay=0.2, on_batch=seen)
        )
        # Once the running runner made it again (a fixed sleep here could end first on a loaded machine):
        await asyncio.wait_for(_consumer_made(nc, "projection-competency"), 30)
        await nc.jetstream().delete_consumer(STREAM_NAME, "projection-competency")  # and while it runs
        await write(writer, *(course_statement(n, *MODULES[n], 100 + n) for n in range(5)))
        relay.notify()
        await asyncio.wait_for(consuming, 30)
    finally:
        stop.set()
        await nc.close()
        await relay.stop()
    assert await runner.checkpoint() == 10


async def test_a_nats_client_that_stopped_reconnecting_is_replaced(
    pool: asyncpg.Pool, writer: StatementWriter, nats_control: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    relay = Relay(pool, nats_control.url, batch_size=50, poll_interval=0.05)
    await relay.start()
    runner = ProjectionRunner(pool, CompetencyProjection(CATALOG))
    clients: list[Any] = []
    connect = projections.runner.nats.connect

    async def remembered(*args: Any, **kwargs: Any) -> Any:
        clients.append(await connect(*args, **kwargs))
        return clients[-1]

    monkeypatch.setattr(projections.runner.nats, "connect", remembered)
    stop = asyncio.Event()
    checkpoints: list[int] = []
    running = asyncio.create_task(
        runner.run(nats_control.url, stop, fetch_timeout=0.2, retry_delay=0.2, on_batch=lambda o: checkpoints.append(o.checkpoint),
                   stalled_after=2.0)
    )
    try:
        await write(writer, course_statement(1, "searching", PASSED, 10))
        relay.notify()
        while not checkpoints or checkpoints[-1] < 1:
            await asyncio.sleep(0.05)
        nats_control.kill()
        while clients[0]._reconnection_task is None:
            await asyncio.sleep(0.05)
        # nats-py's reconnect loop ends for good on an error it does not expect
        # (seen: uvloop's RuntimeError on a transport closed under it); end it.
        clients[0]._reconnection_task.cancel()
        await nats_control.start()
        await write(writer, course_statement(2, "searching", PASSED, 20))
        relay.notify()
        # The log gives position 2 even without NATS (read on the relay's
        # checkpoint while nothing can be fetched); the stalled client is replaced.
        await asyncio.wait_for(_until(lambda: checkpoints[-1] >= 2 and len(clients) == 2), 30)
        assert not clients[0].is_connected

        async def acknowledged_through_the_new_client() -> None:
            while True:
                info = await clients[1].jetstream().consumer_info(STREAM_NAME, "projection-competency")
                if info.ack_floor.stream_seq >= 2:
                    return
                await asyncio.sleep(0.05)

        await asyncio.wait_for(acknowledged_through_the_new_client(), 30)
    finally:
        stop.set()
        await asyncio.wait_for(running, 30)
        await relay.stop()


async def _until(condition: Any) -> None:
    while not condition():
        await asyncio.sleep(0.05)


async def _consumer_made(nc: Any, durable: str) -> None:
    while True:
        try:
            await nc.jetstream().consumer_info(STREAM_NAME, durable)
            return
        except nats.js.errors.NotFoundError:
            await asyncio.sleep(0.02)
