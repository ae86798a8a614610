"""Messages published straight to the events stream (forged, replayed,
reordered, altered, by reference) change nothing a replay of the log would
not give: each is refused and counted, or applied in log order exactly once."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import msgspec
import nats
import pytest
from prometheus_client import REGISTRY

from lrs import projection_health
from lrs.nats.bus import Bus
from lrs.event_contract import OutgoingMessage
from lrs.eventlog import StoredFormatter, format_stored, hash_with_text
from lrs.event_contract import event_message
from lrs.relay import Relay
from lrs.store import StatementWriter
from lrs.store.log_reader import last_position, read_events_after
from projections.competency.store import CompetencyProjection, digest
from projections.replay import replay
from projections.runner import ProjectionRunner
from tests.integration.competency_statements import CATALOG, MODULES, PASSED, course_statement, learner_key, learner_state, write

pytestmark = pytest.mark.slow


def refused(reason: str) -> float:
    value = REGISTRY.get_sample_value(
        "lrs_projection_refused_messages_total", {"projection": "competency", "reason": reason}
    )
    return value or 0.0


def forged_after(last: Any, payload: bytes, position: int | None = None) -> OutgoingMessage:
    """A message chained on ``last`` with a self-consistent hash: what an
    attacker who can read the stream and publish to it can make."""
    event_id = uuid.uuid4()
    position = last.position + 1 if position is None else position
    stored = format_stored(last.stored)
    digest_ = hash_with_text(last.hash, position, event_id, "default", "statement", stored, payload)
    return OutgoingMessage(
        subject="lrs.events.default.statement",
        data=payload,
        headers={
            "Nats-Msg-Id": str(event_id), "Lrs-Position": str(position), "Lrs-Tenant": "default",
            "Lrs-Event-Type": "statement", "Lrs-Stored": stored, "Lrs-Hash": digest_.hex(),
            "Lrs-Prev-Hash": last.hash.hex(),
        },
    )


async def publish(url: str, messages: list[OutgoingMessage]) -> None:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        for m in messages:
            await js.publish(m.subject, m.data, headers=dict(m.headers))
    finally:
        await nc.close()


async def test_forged_replayed_reordered_and_altered_messages_give_the_replayed_digest(
    pool: asyncpg.Pool, writer: StatementWriter, nats_control: Any
) -> None:
    projection_health.forget_runners()
    await write(writer, *(course_statement(n % 4, *MODULES[n % len(MODULES)], n) for n in range(20)))
    records = await read_events_after(pool, 0, 100)
    head = records[-1]
    genuine = [event_message(r, StoredFormatter()) for r in records]

    # What an attacker on the stream publishes before the relay gets there.
    intruder = "mailto:never-sent-anything@example.gov.vn"
    fake = [
        msgspec.json.encode({**course_statement(999, module, verb, n), "actor": {"mbox": intruder}})
        for n, (module, verb) in enumerate(MODULES)
        if verb == PASSED
    ]
    forged_beyond_head = [forged_after(head, fake[0])]
    forged_at_next = [forged_after(records[4], fake[1], position=records[5].position)]  # chained on the real 5
    altered = genuine[2]
    altered = OutgoingMessage(altered.subject, altered.data.replace(b"cs2@", b"cs3@"), altered.headers)
    replayed = OutgoingMessage(genuine[0].subject, genuine[0].data, {**genuine[0].headers, "Nats-Msg-Id": str(uuid.uuid4())})
    reordered = list(reversed(genuine[14:]))  # genuine, in reverse order: the relay's copies are then duplicates
    unreadable = OutgoingMessage("lrs.events.default.statement", b"{}", {"Lrs-Position": "3"})

    bus = Bus(nats_control.url)
    await bus.connect()
    await bus.ensure_stream()
    await bus.close()
    before = {reason: refused(reason) for reason in ("not_in_log", "hash_mismatch", "prev_hash_mismatch", "unreadable")}
    await publish(nats_control.url, forged_beyond_head + forged_at_next + [altered, replayed] + reordered + [unreadable])

    relay = Relay(pool, nats_control.url, batch_size=50, poll_interval=0.05)
    await relay.start()
    runner = ProjectionRunner(pool, CompetencyProjection(CATALOG))
    stop = asyncio.Event()
    checkpoints: list[int] = []

    def seen(outcome: Any) -> None:
        checkpoints.append(outcome.checkpoint)
        if outcome.checkpoint >= head.position:
            stop.set()

    try:
        await asyncio.wait_for(runner.run(nats_control.url, stop, batch_size=7, fetch_timeout=0.2, on_batch=seen), 60)
        # More forged messages once the projection is caught up: beyond the head and at the next position.
        stop.clear()
        await publish(nats_control.url, [forged_after(head, fake[2]), forged_after(head, fake[3])])
        await write(writer, course_statement(0, "personal-data", PASSED, 5000))
        relay.notify()
        await asyncio.wait_for(
            runner.run(nats_control.url, stop := asyncio.Event(), batch_size=7, fetch_timeout=0.2,
                       on_batch=lambda o: stop.set() if o.checkpoint >= head.position + 1 else None),
            60,
        )
    finally:
        await relay.stop()

    assert checkpoints == sorted(checkpoints)
    assert await runner.checkpoint() == await last_position(pool) == head.position + 1
    assert await learner_state(pool, f"mbox:{intruder}") is None
    # Each forged, altered and replayed message once: the first beyond the head is
    # not in the log; the last two may be either, depending on whether event 21
    # was committed before they were read.
    assert refused("not_in_log") - before["not_in_log"] >= 1
    new_refusals = sum(refused(r) - before[r] for r in ("not_in_log", "hash_mismatch", "prev_hash_mismatch"))
    assert new_refusals == 6
    assert refused("unreadable") - before["unreadable"] == 1
    live = await digest(pool)
    await replay(pool, CompetencyProjection(CATALOG))
    assert await digest(pool) == live
    assert await learner_state(pool, learner_key(2)) is not None


async def test_messages_by_reference_are_read_from_the_log(
    pool: asyncpg.Pool, writer: StatementWriter, nats_control: Any
) -> None:
    """With every payload above the inline limit, messages carry no data and
    the projection reads each event from PostgreSQL."""
    await write(writer, *(course_statement(n % 3, *MODULES[n % len(MODULES)], n) for n in range(12)))
    relay = Relay(pool, nats_control.url, batch_size=5, poll_interval=0.05, inline_max_bytes=16)
    await relay.start()
    runner = ProjectionRunner(pool, CompetencyProjection(CATALOG))
    stop = asyncio.Event()
    try:
        await asyncio.wait_for(
            runner.run(nats_control.url, stop, batch_size=4, fetch_timeout=0.2,
                       on_batch=lambda o: stop.set() if o.checkpoint >= 12 else None),
            60,
        )
    finally:
        await relay.stop()
    nc = await nats.connect(nats_control.url)
    try:
        message = await nc.jetstream().get_msg("LRS_EVENTS", seq=1)
        assert message.data in (b"", None) and int(message.headers["Lrs-Payload-Size"]) > 16
    finally:
        await nc.close()
    live = await digest(pool)
    await replay(pool, CompetencyProjection(CATALOG))
    assert await digest(pool) == live


async def test_a_position_beyond_bigint_is_refused_and_the_projection_goes_on(
    pool: asyncpg.Pool, writer: StatementWriter, nats_control: Any
) -> None:
    """Looking up a position past 2^63 - 1 raised in asyncpg; the message was
    never acknowledged, so one forged message stopped the projection for good."""
    await write(writer, *(course_statement(n % 3, *MODULES[n % len(MODULES)], n) for n in range(5)))
    records = await read_events_after(pool, 0, 100)
    bus = Bus(nats_control.url)
    await bus.connect()
    await bus.ensure_stream()
    await bus.close()
    before = refused("unreadable")
    huge = [forged_after(records[-1], b"{}") for _ in range(2)]
    huge = [OutgoingMessage(m.subject, m.data, {**m.headers, "Lrs-Position": str(p)})
            for m, p in zip(huge, (2**64 + 1, 2**63))]
    await publish(nats_control.url, huge)
    relay = Relay(pool, nats_control.url, batch_size=50, poll_interval=0.05)
    await relay.start()
    runner = ProjectionRunner(pool, CompetencyProjection(CATALOG))
    stop = asyncio.Event()
    try:
        await asyncio.wait_for(
            runner.run(nats_control.url, stop, batch_size=7, fetch_timeout=0.2,
                       on_batch=lambda o: stop.set() if o.checkpoint >= records[-1].position else None),
            60,
        )
    finally:
        await relay.stop()
    assert await runner.checkpoint() == records[-1].position
    assert refused("unreadable") - before == 2
