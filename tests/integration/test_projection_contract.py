"""The contract every projection keeps, run for each one the service runs
(lrs.service.projections_to_run): folding the log one event at a time
(``apply``), all at once (``apply_many``) and rebuilding it in a replay
(``rebuild``, or batch by batch) give the same state, compared by the
projection's digest.  A new projection registered in the composition root
is held to it without writing a test of its own."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import asyncpg
import pytest

from lrs.service import projections_to_run
from lrs.store import StatementWriter
from lrs.store.log_reader import read_events_after
from projections.contract import Projection
from projections.events import log_events
from projections.replay import replay
from projections.runner import ProjectionRunner
from projections.units.roster import parse_json
from projections.units.store import load_roster
from tests.integration.competency_statements import MODULES, VOIDED, course_statement, voiding, write
from tests.integration.test_projection_units import LEAVES, NOW, UNITS, membership

NAMES = [p.name for p in projections_to_run()]


def fresh(name: str) -> Projection:
    """A new instance (nothing kept in memory from an earlier fold)."""
    return {p.name: p for p in projections_to_run()}[name]


async def realistic_log(pool: asyncpg.Pool, writer: StatementWriter) -> None:
    """A roster, three rounds of course statements from a dozen learners with
    voidings among them, and learners changing unit while evidence arrives."""
    rng = random.Random(14)
    learners = range(12)
    home = {n: rng.choice(LEAVES) for n in learners}
    await load_roster(pool, "default", parse_json({
        "units": UNITS, "memberships": [membership(n, home[n], NOW - timedelta(days=100)) for n in learners],
    }), now=NOW)
    written: list[dict[str, Any]] = []
    for round_ in range(3):
        bodies = []
        for n in learners:
            modules = MODULES if rng.random() < 0.6 else rng.sample(MODULES, 5)
            bodies.extend(course_statement(n, m, v, rng.randrange(4000)) for m, v in modules)
        targets = [b for b in written or bodies if b["verb"]["id"] != VOIDED]
        bodies += [voiding(b["id"]) for b in rng.sample(targets, 6)]
        rng.shuffle(bodies)
        await write(writer, *bodies)
        written += bodies
        if round_ == 1:
            moved = rng.sample(list(learners), 4)
            await load_roster(pool, "default", parse_json({"memberships": [
                m for n in moved for m in (
                    membership(n, home[n], NOW - timedelta(days=100), NOW + timedelta(days=1)),
                    membership(n, rng.choice(LEAVES), NOW + timedelta(days=1)),
                )
            ]}), now=NOW + timedelta(days=2))


@pytest.mark.parametrize("name", NAMES)
async def test_apply_one_by_one_apply_many_and_rebuild_give_one_digest(
    name: str, pool: asyncpg.Pool, writer: StatementWriter
) -> None:
    await realistic_log(pool, writer)
    events = log_events(await read_events_after(pool, 0, 100_000))
    assert len(events) > 250

    one_at_a_time = ProjectionRunner(pool, fresh(name))
    for event in events:
        outcome = await one_at_a_time.apply_batch([event])
        assert (outcome.checkpoint, outcome.applied, outcome.parked) == (event.position, 1, ())
    by_apply = await fresh(name).digest(pool)

    projection = fresh(name)
    async with pool.acquire() as conn:
        await projection.reset(conn)
        await conn.execute("UPDATE projection_checkpoints SET position = 0 WHERE name = $1", name)
    outcome = await ProjectionRunner(pool, projection).apply_batch(events)
    assert (outcome.checkpoint, outcome.applied, outcome.parked) == (events[-1].position, len(events), ())
    by_apply_many = await projection.digest(pool)

    assert await replay(pool, fresh(name)) == events[-1].position
    by_rebuild = await fresh(name).digest(pool)

    assert by_apply == by_apply_many == by_rebuild


async def test_the_digest_tells_states_apart(pool: asyncpg.Pool, writer: StatementWriter) -> None:
    """The comparison above can fail: one event less is another digest."""
    await realistic_log(pool, writer)
    events = log_events(await read_events_after(pool, 0, 100_000))
    for name in NAMES:
        runner = ProjectionRunner(pool, fresh(name))
        await runner.apply_batch(events[:-20])
        before = await fresh(name).digest(pool)
        await runner.apply_batch(events[-20:])
        assert await fresh(name).digest(pool) != before
