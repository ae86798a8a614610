"""The competency projection runner against real PostgreSQL (and NATS): an
event it fails on is retried after its delay, then parked, and unparked
once it applies."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest

from lrs.payload_codec import open_payload
from lrs.relay import Relay
from lrs.store import StatementWriter
from lrs.store.log_reader import read_events_after
from projections.competency.store import CompetencyProjection
from projections.replay import replay
import projections.applying
from projections.runner import LogEvent, ProjectionRunner, checkpoint_position, parked_events
from tests.integration.competency_statements import (
    CATALOG,
    PASSED,
    course_statement,
    learner_key,
    learner_state,
    log_events,
    write,
)


class FailsAt(CompetencyProjection):
    """Fails on the given positions, as a rule bug or an unreadable event would."""

    def __init__(self, positions: set[int]) -> None:
        super().__init__(CATALOG)
        self.positions = positions

    async def apply(self, conn: asyncpg.Connection, event: LogEvent) -> None:
        await super().apply(conn, event)  # its writes must be undone by the savepoint
        if event.position in self.positions:
            raise ValueError(f"cannot fold position {event.position}")

    async def apply_many(self, conn: asyncpg.Connection, events: Any) -> None:
        await super().apply_many(conn, events)
        for event in events:  # the runner then retries the batch one event at a time
            if event.position in self.positions:
                raise ValueError(f"cannot fold position {event.position}")


async def test_poison_event_is_retried_then_parked_and_the_others_flow(pool: asyncpg.Pool, writer: StatementWriter) -> None:
    await write(writer, *(course_statement(n, "device-security", PASSED, n) for n in range(1, 6)))
    events = await log_events(pool)
    runner = ProjectionRunner(pool, FailsAt({2}), max_attempts=3)
    first = await runner.apply_batch(events)
    assert (first.checkpoint, first.applied, first.failed_at) == (1, 1, 2)
    second = await runner.apply_batch(events)
    assert (second.checkpoint, second.failed_at) == (1, 2)
    third = await runner.apply_batch(events)
    assert (third.checkpoint, third.applied, third.parked, third.failed_at) == (5, 3, (2,), None)
    parked = await pool.fetchrow("SELECT position, tenant, attempts, error FROM projection_parked")
    assert (parked["position"], parked["tenant"], parked["attempts"]) == (2, "default", 3)
    assert "cannot fold position 2" in parked["error"]
    assert await pool.fetchval("SELECT count(*) FROM projection_failures") == 0
    assert await learner_state(pool, learner_key(2)) is None  # the failed attempt left nothing behind
    for n in (1, 3, 4, 5):
        assert await learner_state(pool, learner_key(n)) is not None


async def test_retrying_a_parked_event_applies_it_once_its_cause_is_fixed(
    pool: asyncpg.Pool, writer: StatementWriter
) -> None:
    await write(writer, *(course_statement(n, "device-security", PASSED, n) for n in range(1, 4)))
    projection = FailsAt({2})
    runner = ProjectionRunner(pool, projection, max_attempts=1)
    assert (await runner.apply_batch(await log_events(pool))).parked == (2,)
    assert [p.position for p in await parked_events(pool, "competency", "default")] == [2]
    assert await parked_events(pool, "competency", "other") == []  # per tenant

    # Still failing: it stays parked with the new error and one more attempt.
    assert "cannot fold position 2" in (await runner.retry_parked(2, "default") or "")
    (still,) = await parked_events(pool, "competency", "default")
    assert still.attempts == 2 and await learner_state(pool, learner_key(2)) is None
    with pytest.raises(LookupError):
        await runner.retry_parked(2, "other")  # another tenant's event is not there
    with pytest.raises(LookupError):
        await runner.retry_parked(1, "default")  # applied, never parked

    projection.positions.clear()  # the cause is fixed
    assert await runner.retry_parked(2, "default") is None
    assert await parked_events(pool, "competency", "default") == []
    state = await learner_state(pool, learner_key(2))
    assert state is not None and state.evidence
    assert await checkpoint_position(pool, "competency") == 3  # the checkpoint did not move


async def test_replay_unparks_what_it_applies_and_parks_what_it_fails_on(
    pool: asyncpg.Pool, writer: StatementWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    await write(writer, *(course_statement(n, "device-security", PASSED, n) for n in range(1, 6)))
    live = await ProjectionRunner(pool, FailsAt({2, 3}), max_attempts=1).apply_batch(await log_events(pool))
    assert live.parked == (2, 3)
    # The cause of 2's failure is gone; 3 now fails in the rebuild's rules instead.
    from projections.competency import rebuild as rebuild_module

    interpret = rebuild_module.interpret_event

    def failing_for_learner_3(event_type: str, payload: bytes, catalog: Any) -> Any:
        if b"cs3@" in open_payload(payload):  # the rebuild is handed payloads as stored (zstd)
            return "ValueError('learner 3 cannot be read')"
        return interpret(event_type, payload, catalog)

    monkeypatch.setattr(rebuild_module, "interpret_event", failing_for_learner_3)
    await replay(pool, CompetencyProjection(CATALOG))
    parked = [(r["position"], r["error"]) for r in await pool.fetch("SELECT position, error FROM projection_parked")]
    assert parked == [(3, "ValueError('learner 3 cannot be read')")]
    assert await learner_state(pool, learner_key(2)) is not None
    assert await learner_state(pool, learner_key(3)) is None


class FailureTimes(FailsAt):
    """:class:`FailsAt` that notes when each failure pinned on an event happened."""

    def __init__(self, positions: set[int]) -> None:
        super().__init__(positions)
        self.failed_at: list[float] = []

    async def apply(self, conn: asyncpg.Connection, event: LogEvent) -> None:
        try:
            await super().apply(conn, event)
        except ValueError:
            self.failed_at.append(asyncio.get_running_loop().time())
            raise


async def test_a_failing_event_is_tried_once_per_retry_delay_until_parked(
    pool: asyncpg.Pool, writer: StatementWriter, nats_control: Any
) -> None:
    """The retry budget (projections/runner.py, docs/competency.md): an event
    the rules fail on is tried again ``retry_delay`` later, and parked at its
    ``max_attempts``-th failure, ``(max_attempts - 1) * retry_delay`` after
    its first.  The redelivered message and the look at the log for what the
    stream holds no more each tried it: about twice as often."""
    await write(writer, *(course_statement(n, "device-security", PASSED, n) for n in range(1, 4)))
    relay = Relay(pool, nats_control.url, batch_size=50, poll_interval=0.05)
    await relay.run(until_caught_up=True)
    projection = FailureTimes({2})
    runner = ProjectionRunner(pool, projection, max_attempts=4)
    stop = asyncio.Event()

    def seen(outcome: Any) -> None:
        if outcome.checkpoint >= 3:
            stop.set()

    retry_delay = 0.6
    try:
        await asyncio.wait_for(runner.run(nats_control.url, stop, fetch_timeout=0.1, retry_delay=retry_delay,
                                          batch_interval=0.0, on_batch=seen), 30)
    finally:
        await relay.stop()
    assert [p.position for p in await parked_events(pool, "competency", "default")] == [2]
    assert len(projection.failed_at) == 4
    gaps = [later - earlier for earlier, later in zip(projection.failed_at, projection.failed_at[1:])]
    assert min(gaps) >= retry_delay * 0.9, gaps


async def test_following_the_log_waits_out_a_failed_events_retry_delay_whatever_the_commits(
    pool: asyncpg.Pool, writer: StatementWriter
) -> None:
    """Without NATS the runner catches up on every commit (``wake``): while
    the event it failed on waits its retry_delay, nothing after it can be
    applied, so a commit is no reason to read the log again (every commit
    read a batch of the log and opened a transaction for nothing, hundreds
    of times a second under load)."""
    await write(writer, *(course_statement(n, "device-security", PASSED, n) for n in range(1, 4)))
    projection = FailureTimes({2})
    runner = ProjectionRunner(pool, projection, max_attempts=3)
    batches = 0
    apply_batch = runner.applier.apply_batch

    async def counted(*args: Any, **kwargs: Any) -> Any:
        nonlocal batches
        batches += 1
        return await apply_batch(*args, **kwargs)

    runner.applier.apply_batch = counted  # type: ignore[method-assign]
    stop, wake = asyncio.Event(), asyncio.Event()

    def seen(outcome: Any) -> None:
        if outcome.checkpoint >= 3:
            stop.set()

    async def committing() -> None:  # a busy writer's commit hook
        while not stop.is_set():
            wake.set()
            await asyncio.sleep(0.005)

    retry_delay = 0.4
    commits = asyncio.ensure_future(committing())
    try:
        await asyncio.wait_for(runner.follow(stop, wake, poll_interval=0.25, retry_delay=retry_delay,
                                             on_batch=seen), 30)
    finally:
        stop.set()
        await commits
    assert [p.position for p in await parked_events(pool, "competency", "default")] == [2]
    assert len(projection.failed_at) == 3
    gaps = [later - earlier for earlier, later in zip(projection.failed_at, projection.failed_at[1:])]
    assert min(gaps) >= retry_delay * 0.9, gaps
    assert max(gaps) < retry_delay + 0.25, gaps  # tried again when due, not a poll later
    assert batches <= 3 + 2, batches  # one per try, and a look or two at the log once all is applied


async def test_a_batch_while_the_next_event_waits_its_retry_delay_reads_nothing_from_the_log(
    pool: asyncpg.Pool, writer: StatementWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Later messages (or a look at the log for what the stream no longer
    holds) while the event after the checkpoint waits its retry_delay: they
    cannot be applied before it, so the gap up to them is not read from
    the log for nothing."""
    await write(writer, *(course_statement(n, "device-security", PASSED, n) for n in range(1, 4)))
    events = await log_events(pool)
    projection = FailureTimes({2})
    runner = ProjectionRunner(pool, projection, max_attempts=3)
    runner.applier.retry_delay = 60.0
    first = await runner.apply_batch(events[:1])
    assert (first.checkpoint, first.failed_at) == (1, None)
    failed = await runner.apply_batch(events[1:2])
    assert (failed.checkpoint, failed.failed_at) == (1, 2)
    reads = 0

    async def counted(*args: Any, **kwargs: Any) -> Any:
        nonlocal reads
        reads += 1
        return await read_events_after(*args, **kwargs)

    monkeypatch.setattr(projections.applying, "read_events_after", counted)
    later = await runner.apply_batch(events[2:])  # position 3 only: position 2 would come from the log
    assert (later.checkpoint, later.applied, later.failed_at) == (1, 0, 2)
    filled = await runner.applier.apply_batch([], fill_to=3)
    assert (filled.checkpoint, filled.applied, filled.failed_at) == (1, 0, 2)
    assert reads == 0 and len(projection.failed_at) == 1
