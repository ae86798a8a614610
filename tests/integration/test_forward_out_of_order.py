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

from connectors.fakelrs import FakeLrs
from connectors.forward.forwarder import ForwardOptions, Forwarder
from connectors.forward.logcheck import LogCheck
from connectors.forward.model import ForwardFilter
from connectors.framework.sink import LrsSink
from lrs.relay import Relay
from lrs.store import StatementWriter
from lrs.store.event_append import append_events
from lrs.store.log_reader import read_events_after
from tests.integration.test_anchors import write

pytestmark = pytest.mark.slow


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
        async with LrsSink(target.url, "target", "target-secret", max_attempts=1) as sink, LogCheck(database_url) as log_check:
            stop = asyncio.Event()
            first = Forwarder(nats_control.url, sink, ForwardFilter.of([], [], []),
                              ForwardOptions(name="lwm", retry_delay=30.0, fetch_timeout=0.2), log_check)
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
                               ForwardOptions(name="lwm", until_caught_up=True, fetch_timeout=0.2), log_check)
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
