"""A replay that ends at exactly the live runner's checkpoint still replaces
the state under it: the live runner must not go on from the learner states
it keeps in memory (projections/competency/store.py's cache), against real
PostgreSQL."""

from __future__ import annotations

import asyncpg

from lrs.store import StatementWriter
from projections.competency.store import CompetencyProjection
from projections.replay import replay
from projections.runner import ProjectionRunner, checkpoint_position
from tests.integration.competency_statements import (
    CATALOG, COMPLETED, COURSE, PASSED, course_statement, learner_key, learner_state, log_events, write,
)
from tests.integration.test_projection_parking import FailsAt


async def test_a_replay_to_the_live_checkpoint_drops_the_live_runners_state_cache(
    pool: asyncpg.Pool, writer: StatementWriter
) -> None:
    # Live, the event at position 2 fails and is parked; the rebuild applies it.
    await write(writer, course_statement(1, "searching", PASSED, 1), course_statement(1, "evaluating-sources", PASSED, 2),
                course_statement(1, "online-communication", COMPLETED, 3))
    live = FailsAt({2})
    runner = ProjectionRunner(pool, live, max_attempts=1)
    assert (await runner.apply_batch(await log_events(pool))).parked == (2,)
    await write(writer, course_statement(1, "office-documents", COMPLETED, 4))
    assert (await runner.apply_batch(await log_events(pool))).checkpoint == 4
    assert ("default", learner_key(1)) in live._cache  # the live runner keeps learner 1 in memory

    assert await replay(pool, CompetencyProjection(CATALOG)) == 4  # exactly the live checkpoint
    assert await checkpoint_position(pool, "competency") == 4
    rebuilt = await learner_state(pool, learner_key(1))
    assert rebuilt is not None and f"{COURSE}/modules/evaluating-sources" in {e.activity for e in rebuilt.evidence}

    # The live runner's next event for learner 1 folds onto the rebuilt state, not its memory.
    await write(writer, course_statement(1, "device-security", PASSED, 5))
    assert (await runner.apply_batch(await log_events(pool))).checkpoint == 5
    state = await learner_state(pool, learner_key(1))
    assert state is not None
    assert {f"{COURSE}/modules/{m}" for m in ("searching", "evaluating-sources", "online-communication",
                                              "office-documents", "device-security")} <= {e.activity for e in state.evidence}
