"""The relay against a real PostgreSQL and a real nats-server.

Events are appended through the real path (migrations, StatementWriter with
its commit hook); "exactly once" is checked by reading the whole stream and
counting Nats-Msg-Id values.
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import json
import os
import shutil
import sys
import uuid
from dataclasses import dataclass
from typing import AsyncIterator

import nats
import pytest
from nats.js import api
from nats.js.errors import NotFoundError
from prometheus_client import REGISTRY

import lrs.relay as relay_module
from lrs.nats.bus import STREAM_NAME, Bus, load_consumer_config, load_stream_config
from lrs.event_contract import event_subject
from lrs.eventlog import EventRecord, format_stored
from lrs.ingest.prepare import prepare_statements
from lrs.relay import Relay
from lrs.store.checkpoints import get_checkpoint
from lrs.store.log_reader import read_events_after
from lrs.store.writer import StatementWriter
from lrs.xapi.statement import parse_statements
from tests.conftest import keep_every_message

AUTHORITY = {"objectType": "Agent", "account": {"homePage": "http://lrs.example", "name": "relay-tests"}}
WAIT_S = 60.0


# -- fixtures ------------------------------------------------------------------


@pytest.fixture
async def shared_nats(nats_url: str) -> str:
    """The session's nats-server with no LRS_EVENTS stream left by earlier tests."""
    nc = await nats.connect(nats_url)
    try:
        try:
            await nc.jetstream().delete_stream(STREAM_NAME)
        except NotFoundError:
            pass
    finally:
        await nc.close()
    return nats_url


@pytest.fixture
async def kept_nats(shared_nats: str) -> str:
    """``shared_nats`` with the stream made and a durable consumer that keeps
    every message (tests.conftest.keep_every_message), for exactly-once checks."""
    await keep_every_message(shared_nats)
    return shared_nats


@pytest.fixture
async def relays(pool, writer: StatementWriter) -> AsyncIterator:
    """Factory of started relays hooked to the writer's commits; all stopped at the end."""
    started: list[Relay] = []

    async def make(nats_url: str, **options) -> Relay:
        options.setdefault("name", "test")
        options.setdefault("poll_interval", 0.2)
        options.setdefault("lock_retry_interval", 0.2)
        options.setdefault("backoff_max", 1.0)
        relay = Relay(pool, nats_url, **options)
        writer.committed.append(relay.notify)
        await relay.start()
        started.append(relay)
        return relay

    try:
        yield make
    finally:
        for relay in started:
            await relay.stop()


# -- helpers -------------------------------------------------------------------


async def append(writer: StatementWriter, count: int, tenant: str = "default") -> None:
    statements = [
        {
            "actor": {"mbox": f"mailto:learner{i}@example.com"},
            "verb": {"id": "http://adlnet.gov/expapi/verbs/experienced"},
            "object": {"id": f"http://example.com/activities/{uuid.uuid4()}"},
        }
        for i in range(count)
    ]
    parsed = parse_statements(json.dumps(statements).encode(), "1.0.3")
    prepared = prepare_statements(parsed, version="1.0.3", authority=AUTHORITY, new_id=uuid.uuid4)
    results = await writer.append(tenant, prepared)
    assert len(results) == count and all(r.inserted for r in results)


async def all_events(pool) -> list[EventRecord]:
    return await read_events_after(pool, 0, 1_000_000)


@dataclass(frozen=True)
class StreamMessage:
    seq: int
    subject: str
    headers: dict[str, str]
    data: bytes


async def read_stream(nats_url: str) -> list[StreamMessage]:
    """Every message of the stream, in stream order."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        info = await js.stream_info(STREAM_NAME)
        total = info.state.messages
        if total == 0:
            return []
        sub = await js.pull_subscribe(
            "lrs.events.>",
            stream=STREAM_NAME,
            config=api.ConsumerConfig(
                ack_policy=api.AckPolicy.NONE, deliver_policy=api.DeliverPolicy.ALL, inactive_threshold=30.0
            ),
        )
        messages: list[StreamMessage] = []
        while len(messages) < total:
            for msg in await sub.fetch(batch=min(1000, total - len(messages)), timeout=5):
                messages.append(
                    StreamMessage(msg.metadata.sequence.stream, msg.subject, dict(msg.headers or {}), msg.data)
                )
        await sub.unsubscribe()
        return messages
    finally:
        await nc.close()


async def wait_until(predicate, what: str, timeout: float = WAIT_S) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.1)


async def wait_published(relay: Relay, pool, nats_url: str) -> None:
    """Until the relay's checkpoint reaches the log head and the stream holds at least as many messages."""
    events = await all_events(pool)
    head = events[-1].position if events else 0

    async def done() -> bool:
        if await get_checkpoint(pool, relay.name) < head:
            return False
        try:
            return len(await read_stream(nats_url)) >= head
        except NotFoundError:
            return False

    await wait_until(done, f"position {head} on the stream")


async def assert_exactly_once(pool, nats_url: str) -> list[StreamMessage]:
    events = await all_events(pool)
    messages = await read_stream(nats_url)
    counts = collections.Counter(m.headers["Nats-Msg-Id"] for m in messages)
    repeated = {msg_id: n for msg_id, n in counts.items() if n != 1}
    assert not repeated, f"messages on the stream more than once: {repeated}"
    assert set(counts) == {str(e.event_id) for e in events}, "stream and log hold different events"
    assert [int(m.headers["Lrs-Position"]) for m in messages] == [e.position for e in events]
    return messages


async def crash_and_wipe(nats_control) -> None:
    """SIGKILL the server and delete its JetStream store: acknowledged messages are lost."""
    nats_control.kill()
    await wait_until(lambda: _true(not nats_control.running), "nats-server to exit")
    shutil.rmtree(nats_control.store_dir)


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


# -- definitions -----------------------------------------------------------------


async def test_stream_is_created_from_its_definition_and_drift_is_repaired(shared_nats: str) -> None:
    definition = load_stream_config()
    assert definition.duplicate_window and definition.duplicate_window > 0
    bus = Bus(shared_nats)
    await bus.connect()
    try:
        info = await bus.ensure_stream()
        assert info.config.subjects == ["lrs.events.>"]
        assert info.config.storage == "file"
        assert info.config.duplicate_window == definition.duplicate_window
        # Someone shortened the window by hand: the next ensure puts it back.
        await bus._jetstream().update_stream(definition.evolve(duplicate_window=1.0))
        info = await bus.ensure_stream()
        assert info.config.duplicate_window == definition.duplicate_window
        assert await bus.last_position() == 0
        consumer = await bus.ensure_consumer(load_consumer_config(durable_name="relay-test"))
        assert consumer.config.ack_policy == "explicit"
        assert consumer.config.durable_name == "relay-test"
    finally:
        await bus.close()


# -- normal operation ------------------------------------------------------------


async def test_events_reach_the_stream_once_in_order_with_headers(pool, writer, relays, kept_nats) -> None:
    relay = await relays(kept_nats, batch_size=50)
    handed: list[tuple[list[int], bool]] = []  # what the read hooks (the anchor writer's) are given
    relay.read_hooks.append(lambda events, texts: handed.append(
        ([e.position for e in events], texts == [format_stored(e.stored) for e in events])))
    await append(writer, 120)
    await append(writer, 30, tenant="acme.org")
    await append(writer, 1)
    await wait_published(relay, pool, kept_nats)
    assert sorted({p for positions, _ in handed for p in positions}) == list(range(1, 152))
    assert all(texts_match for _, texts_match in handed)

    messages = await assert_exactly_once(pool, kept_nats)
    events = await all_events(pool)
    assert len(events) == 151
    for message, event in zip(messages, events):
        assert message.subject == event_subject(event.tenant, event.event_type)
        assert message.data == event.payload
        assert message.headers["Nats-Msg-Id"] == str(event.event_id)
        assert message.headers["Lrs-Tenant"] == event.tenant
        assert message.headers["Lrs-Event-Type"] == event.event_type == "statement"
        assert message.headers["Lrs-Stored"] == format_stored(event.stored)
        assert message.headers["Lrs-Hash"] == event.hash.hex()
        assert message.headers["Lrs-Prev-Hash"] == event.prev_hash.hex()
        assert "Lrs-Payload-Size" not in message.headers
    assert {m.subject for m in messages} == {"lrs.events.default.statement", "lrs.events.acme%2Eorg.statement"}
    assert await relay.bus.last_position() == 151
    assert relay.status() == {
        "running": True,
        "leader": True,
        "nats": "connected",
        "published_position": 151,
        "log_head": 151,
        "lag": 0,
        "last_error": None,
        "last_error_at": None,
    }
    assert sample("lrs_relay_lag_events", relay="test") == 0
    assert sample("lrs_relay_published_position", relay="test") == 151


async def test_a_commit_wakes_the_relay_without_waiting_for_the_poll(pool, writer, relays, kept_nats) -> None:
    relay = await relays(kept_nats, poll_interval=600.0)
    await wait_until(lambda: _true(relay.is_leader and relay.bus.connected), "the relay to lead")
    await append(writer, 5)
    await wait_published(relay, pool, kept_nats)
    await assert_exactly_once(pool, kept_nats)


async def test_a_busy_log_moves_the_checkpoint_once_an_interval_and_when_commits_stop(
    pool, writer, relays, kept_nats, monkeypatch
) -> None:
    """Small groups committed one after another catch the relay up every
    round: the checkpoint (a PostgreSQL transaction) moves at most once per
    checkpoint_interval then, and reaches the head once a poll interval
    passes with no commit."""
    written: list[int] = []
    set_checkpoint = relay_module.set_checkpoint

    async def counted(conn, name: str, position: int) -> None:
        written.append(position)
        await set_checkpoint(conn, name, position)

    monkeypatch.setattr(relay_module, "set_checkpoint", counted)
    relay = await relays(kept_nats, checkpoint_interval=600.0, poll_interval=1.5)
    await wait_until(lambda: _true(relay.is_leader and relay.bus.connected), "the relay to lead")
    for round_ in range(1, 9):
        await append(writer, 2)
        await wait_until(lambda: _true(relay.published_position == 2 * round_), f"round {round_} published")
    assert len(written) <= 2  # the first catch-up (its interval starts then), and perhaps one quiet poll
    await wait_until(lambda: _checkpoint_is(pool, "test", 16), "the checkpoint at the head", timeout=5)
    assert written[-1] == 16
    await assert_exactly_once(pool, kept_nats)


async def test_commits_landing_while_the_relay_publishes_wait_a_linger_for_more(
    pool, writer, relays, kept_nats, monkeypatch
) -> None:
    """Small groups committed faster than a round publishes: the relay does
    not go straight back for each one, it lets ``linger`` pass first, so a
    round carries what a linger brought (no more rounds than lingers)."""
    linger = 0.05
    relay = await relays(kept_nats, linger=linger)
    await wait_until(lambda: _true(relay.is_leader and relay.bus.connected), "the relay to lead")
    publish_batch = relay.bus.publish_batch

    async def slow(batch):  # a round that publishes for 10 ms, as on a busy machine
        await asyncio.sleep(0.01)
        return await publish_batch(batch)

    monkeypatch.setattr(relay.bus, "publish_batch", slow)
    rounds_before, started = relay.batches_published, asyncio.get_running_loop().time()
    for _ in range(60):  # a one-statement group every 5 ms or so
        await append(writer, 1)
        await asyncio.sleep(0.004)
    elapsed = asyncio.get_running_loop().time() - started
    await wait_published(relay, pool, kept_nats)
    rounds = relay.batches_published - rounds_before
    assert rounds <= elapsed / linger + 2, (rounds, elapsed)
    await assert_exactly_once(pool, kept_nats)


async def test_a_stopped_relay_leaves_its_checkpoint_at_what_it_published(pool, writer, relays, kept_nats) -> None:
    """A relay stopped (SIGTERM: the service's shutdown) between two
    checkpoints writes the last one: a restart later than the stream's
    duplicate window would otherwise deliver the republished events as new."""
    relay = await relays(kept_nats, checkpoint_interval=600.0, poll_interval=600.0)
    await wait_until(lambda: _true(relay.is_leader and relay.bus.connected), "the relay to lead")
    await append(writer, 5)
    await wait_until(lambda: _checkpoint_is(pool, "test", 5), "the first checkpoint")
    await append(writer, 3)
    await wait_until(lambda: _true(relay.published_position == 8), "the next events published")
    assert await get_checkpoint(pool, "test") == 5  # not moved yet: the interval has not passed
    await relay.stop()
    assert await get_checkpoint(pool, "test") == 8


async def _true(value: bool) -> bool:
    return value


async def test_relay_killed_before_its_checkpoint_resumes_without_duplicates(
    pool, writer, relays, kept_nats, monkeypatch
) -> None:
    acked = asyncio.Event()

    async def die_before_checkpoint(conn, name, position) -> None:
        acked.set()
        await asyncio.Event().wait()  # cancelled here, as a crash after the acks

    monkeypatch.setattr(relay_module, "set_checkpoint", die_before_checkpoint)
    monkeypatch.setattr(relay_module, "STOP_CHECKPOINT_TIMEOUT_S", 0.1)  # the stop's checkpoint is lost too
    first = await relays(kept_nats, batch_size=1000)
    await append(writer, 300)
    await asyncio.wait_for(acked.wait(), WAIT_S)
    await first.stop()
    assert await get_checkpoint(pool, "test") == 0
    on_stream_before = len(await read_stream(kept_nats))
    assert on_stream_before > 0
    monkeypatch.undo()

    await append(writer, 50)
    duplicates_before = sample("lrs_relay_messages_published_total", relay="test", outcome="duplicate")
    second = await relays(kept_nats)
    await wait_published(second, pool, kept_nats)

    await assert_exactly_once(pool, kept_nats)
    # The second relay did republish what the first had sent; the stream dropped those.
    # (A batch whose last acknowledgement does not add up is published again with
    # every message acknowledged, so the new messages of that batch count too.)
    duplicates = sample("lrs_relay_messages_published_total", relay="test", outcome="duplicate") - duplicates_before
    assert on_stream_before <= duplicates <= on_stream_before + 50


async def test_two_relays_publish_each_event_once_and_fail_over(pool, writer, relays, kept_nats) -> None:
    one = await relays(kept_nats, batch_size=20)
    two = await relays(kept_nats, batch_size=20)
    for _ in range(5):
        await append(writer, 40)
    await wait_until(lambda: _true(one.is_leader or two.is_leader), "a leader")
    leader, standby = (one, two) if one.is_leader else (two, one)
    await wait_published(leader, pool, kept_nats)
    assert not standby.is_leader
    assert standby.batches_published == 0
    assert leader.batches_published >= 10
    await assert_exactly_once(pool, kept_nats)

    await leader.stop()
    await append(writer, 60)
    await wait_until(lambda: _true(standby.is_leader), "the standby to take over")
    await wait_published(standby, pool, kept_nats)
    assert standby.batches_published >= 3
    await assert_exactly_once(pool, kept_nats)


# -- NATS failures -----------------------------------------------------------------


async def test_stream_lost_while_relay_down_is_republished_on_start(pool, writer, relays, nats_control) -> None:
    relay = await relays(nats_control.url, name="gap")
    await append(writer, 250)
    await wait_published(relay, pool, nats_control.url)
    await relay.stop()

    await crash_and_wipe(nats_control)
    await nats_control.start()
    await keep_every_message(nats_control.url)  # the wiped server's consumer, back before the relay
    await append(writer, 20)

    restarted = await relays(nats_control.url, name="gap")
    await wait_published(restarted, pool, nats_control.url)
    assert await get_checkpoint(pool, "gap") == 270
    await assert_exactly_once(pool, nats_control.url)


async def test_nats_killed_and_store_wiped_under_a_running_relay(pool, writer, relays, nats_control) -> None:
    # The wiped server has no consumer until one comes back, and the relay
    # makes the stream again when it reconnects: a stream that keeps every
    # message (limits retention) shows what it republished.
    keeping = load_stream_config().evolve(retention=api.RetentionPolicy.LIMITS)
    # A relay closes only a bus it made: this one is the test's to close, or
    # its client goes on reconnecting to the stopped server after the test.
    bus, relay = Bus(nats_control.url, stream_config=keeping), None
    try:
        relay = await relays(bus, name="wiped")
        await append(writer, 300)
        await wait_published(relay, pool, nats_control.url)

        await crash_and_wipe(nats_control)
        await asyncio.wait_for(append(writer, 40), 10)  # ingest does not wait on NATS
        await nats_control.start()
        await append(writer, 10)

        await wait_published(relay, pool, nats_control.url)
        await assert_exactly_once(pool, nats_control.url)
        assert sample("lrs_relay_resyncs_total", relay="wiped") >= 2
    finally:
        if relay is not None:
            await relay.stop()  # before its bus closes (the fixture's stop again is a no-op)
        await bus.close()


async def test_relay_started_while_nats_is_down_publishes_once_it_is_up(pool, writer, relays, nats_control) -> None:
    await nats_control.stop()
    relay = await relays(nats_control.url, name="late")
    await asyncio.wait_for(append(writer, 30), 10)
    await wait_until(lambda: _true(relay.is_leader and relay.log_head == 30), "the relay to see the log")
    assert relay.status()["nats"] == "disconnected"
    assert relay.status()["lag"] == 30

    await nats_control.start()
    await wait_published(relay, pool, nats_control.url)
    await assert_exactly_once(pool, nats_control.url)


# An outage longer than the relay's JetStream ack timeout (and its backoff):
# publishes in flight when NATS went have timed out and the relay retries.
OUTAGE_S = inspect.signature(Bus).parameters["ack_timeout"].default + 2.0


@pytest.mark.slow
async def test_nats_down_past_the_ack_timeout_ingest_continues_and_backlog_arrives_once(
    pool, writer, relays, nats_control
) -> None:
    relay = await relays(nats_control.url, name="outage")
    await append(writer, 200)
    await wait_published(relay, pool, nats_control.url)

    await nats_control.stop()
    loop = asyncio.get_running_loop()
    outage_ends = loop.time() + OUTAGE_S
    appended_while_down = 0
    while loop.time() < outage_ends:
        # Each append must complete while NATS is down; a relay that held up
        # ingest would make this wait_for fail.
        await asyncio.wait_for(append(writer, 25), 10)
        appended_while_down += 25
        await asyncio.sleep(0.25)
    assert not relay.bus.connected
    assert relay.status()["lag"] == appended_while_down
    assert sample("lrs_relay_lag_events", relay="outage") == appended_while_down

    await nats_control.start()
    await wait_published(relay, pool, nats_control.url)
    messages = await assert_exactly_once(pool, nats_control.url)
    assert len(messages) == 200 + appended_while_down
    assert relay.status()["lag"] == 0


# -- the command ---------------------------------------------------------------------


async def run_relay_command(database_url: str, nats_url: str, *args: str) -> tuple[int, bytes]:
    env = dict(os.environ, LRS_DATABASE_URL=database_url, LRS_NATS_URL=nats_url)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "lrs", "relay", *args,
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(proc.communicate(), WAIT_S)
    return proc.returncode, output


async def test_relay_command_publishes_until_caught_up(pool, writer, database_url, kept_nats) -> None:
    await append(writer, 75)
    code, output = await run_relay_command(database_url, kept_nats, "--until-caught-up", "--batch-size", "10")
    assert code == 0, output.decode()
    assert await get_checkpoint(pool, "jetstream") == 75
    await assert_exactly_once(pool, kept_nats)

    await append(writer, 5)
    code, output = await run_relay_command(database_url, kept_nats, "--until-caught-up")
    assert code == 0, output.decode()
    assert await get_checkpoint(pool, "jetstream") == 80
    await assert_exactly_once(pool, kept_nats)


async def test_a_foreign_last_message_with_an_unreadable_position_does_not_stop_the_relay(
    pool, writer, nats_control
) -> None:
    """The relay resumes after the stream's last Lrs-Position; reading 'x'
    there raised ValueError on every resync, so the relay never published again."""
    await append(writer, 3)
    first = Relay(pool, nats_control.url, batch_size=50, poll_interval=0.05)
    await asyncio.wait_for(first.run(until_caught_up=True), WAIT_S)
    await first.stop()
    nc = await nats.connect(nats_control.url)
    try:
        await nc.jetstream().publish(event_subject("default", "statement"), b"{}", headers={"Lrs-Position": "x"})
    finally:
        await nc.close()
    await append(writer, 2)
    restarted = Relay(pool, nats_control.url, batch_size=50, poll_interval=0.05)
    try:
        await asyncio.wait_for(restarted.run(until_caught_up=True), 20)
    finally:
        await restarted.stop()
    positions = {m.headers.get("Lrs-Position") for m in await read_stream(nats_control.url)}
    assert {str(p) for p in range(1, 6)} <= positions


# -- stream limits -------------------------------------------------------------


async def test_an_existing_stream_gets_the_definitions_compression_and_age(shared_nats) -> None:
    definition = load_stream_config()
    assert definition.compression == api.StoreCompression.S2
    assert definition.max_age == 30 * 24 * 3600
    bus = Bus(shared_nats)
    await bus.connect()
    try:
        # A stream made by an older version: everything kept, uncompressed.
        await bus._jetstream().add_stream(definition.evolve(compression=api.StoreCompression.NONE, max_age=0))
        info = await bus.ensure_stream(update=False)  # the relay's: left as it is
        assert info.config.compression == api.StoreCompression.NONE and not info.config.max_age
        info = await bus.ensure_stream()  # the set-up's, as admin
        assert info.config.compression == api.StoreCompression.S2
        assert info.config.max_age == definition.max_age
    finally:
        await bus.close()


async def test_a_stream_whose_messages_all_aged_out_is_not_filled_again(pool, writer, relays, shared_nats) -> None:
    bus = Bus(shared_nats, stream_config=load_stream_config().evolve(max_age=1.0, duplicate_window=1.0))
    await bus.connect()
    try:
        await bus.ensure_stream()
        await bus.ensure_consumer(load_consumer_config(durable_name="offline"))  # keeps them until max_age
        relay = await relays(bus)
        await append(writer, 20)
        await wait_until(lambda: _true(relay.published_position == 20), "20 events published")
        await wait_until(lambda: _checkpoint_is(pool, relay.name, 20), "the relay's checkpoint at 20")

        async def aged_out() -> bool:
            state = (await bus._jetstream().stream_info(STREAM_NAME)).state
            return state.messages == 0 and state.last_seq == 20

        await wait_until(aged_out, "every message aged out", timeout=15)
        assert await bus.last_position() is None
        await relay.stop()

        again = await relays(bus)  # resyncs: after its checkpoint, not from the start of the log
        await append(writer, 5)
        await wait_until(lambda: _true(again.published_position == 25), "25 events published")
        info = await bus._jetstream().stream_info(STREAM_NAME)
        assert (info.state.first_seq, info.state.last_seq, info.state.messages) == (21, 25, 5)
        assert [int(m.headers["Lrs-Position"]) for m in await read_stream(shared_nats)] == [21, 22, 23, 24, 25]
    finally:
        await bus.close()


async def _checkpoint_is(pool, name: str, position: int) -> bool:
    return await get_checkpoint(pool, name) == position
