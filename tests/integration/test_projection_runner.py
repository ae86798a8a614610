"""The competency projection runner against real PostgreSQL: catching up
from the log, duplicates, gaps and voidings, and its cached states."""

from __future__ import annotations

import random
from typing import Any

import asyncpg
import pytest

from lrs.store import StatementWriter
from lrs.store.log_reader import last_position
from projections.competency.codec import decode_state
from projections.competency.rows import CERTIFICATION_COLUMNS, STATE_COLUMNS, certification_rows, state_rows
from projections.competency.store import CompetencyProjection, digest
from projections.replay import replay
from projections.runner import ProjectionRunner
from tests.integration.competency_statements import (
    CATALOG,
    FAILED,
    MODULES,
    PASSED,
    PROGRAM,
    VN,
    course_statement,
    learner_key,
    learner_state,
    log_events,
    voiding,
    write,
)


async def test_catch_up_from_the_log_builds_state_rows_and_certification(pool: asyncpg.Pool, writer: StatementWriter) -> None:
    await write(writer, *(course_statement(1, m, v, 10 * i) for i, (m, v) in enumerate(MODULES)))
    await write(writer, course_statement(2, "device-security", FAILED, 5, 0.3))
    runner = ProjectionRunner(pool, CompetencyProjection(CATALOG))
    assert await runner.catch_up() == await last_position(pool) == 11

    state = await learner_state(pool, learner_key(1))
    assert state is not None
    certification = state.certifications[f"{PROGRAM[0]}|{PROGRAM[1]}"]
    assert certification.earned and len(certification.statement_ids) == 10
    row = await pool.fetchrow(
        "SELECT earned, earned_at, statement_ids FROM competency_certifications WHERE learner = $1", learner_key(1)
    )
    assert row["earned"] is True
    assert sorted(str(i) for i in row["statement_ids"]) == list(certification.statement_ids)
    status = await pool.fetchval(
        "SELECT status FROM competency_states WHERE learner = $1 AND competency = $2", learner_key(2), f"{VN}/4.1"
    )
    assert status == "in_progress"


async def test_redelivered_duplicated_and_reordered_batches_change_nothing(pool: asyncpg.Pool, writer: StatementWriter) -> None:
    await write(writer, *(course_statement(n % 3, m, v, 7 * i) for n, (i, (m, v)) in enumerate(enumerate(MODULES * 2))))
    events = await log_events(pool)
    reference = ProjectionRunner(pool, CompetencyProjection(CATALOG))
    await reference.catch_up()
    expected = await digest(pool)

    await pool.execute("TRUNCATE competency_learners, competency_states, competency_certifications, "
                       "competency_statement_learners, competency_voids")
    await pool.execute("UPDATE projection_checkpoints SET position = 0")
    runner = ProjectionRunner(pool, CompetencyProjection(CATALOG))
    shuffled = events + events[:5]
    random.Random(7).shuffle(shuffled)
    for start in range(0, len(shuffled), 6):
        await runner.apply_batch(shuffled[start:start + 6])
        await runner.apply_batch(shuffled[:start])  # everything again: redeliveries
    assert await runner.checkpoint() == len(events)
    assert await digest(pool) == expected


async def test_a_gap_is_filled_from_the_postgres_log(pool: asyncpg.Pool, writer: StatementWriter) -> None:
    await write(writer, *(course_statement(1, m, v, i) for i, (m, v) in enumerate(MODULES)))
    events = await log_events(pool)
    runner = ProjectionRunner(pool, CompetencyProjection(CATALOG))
    outcome = await runner.apply_batch([events[-1]])  # NATS delivered only the last one so far
    assert (outcome.checkpoint, outcome.applied) == (10, 10)
    state = await learner_state(pool, learner_key(1))
    assert state is not None and state.certifications[f"{PROGRAM[0]}|{PROGRAM[1]}"].earned


async def test_voiding_before_and_after_its_target_both_remove_the_evidence(pool: asyncpg.Pool, writer: StatementWriter) -> None:
    early = course_statement(1, "device-security", PASSED, 10)
    late = course_statement(2, "device-security", PASSED, 10)
    # The voiding of "late" is logged before "late" itself.
    await write(writer, early, voiding(late["id"]), late, voiding(early["id"]))
    runner = ProjectionRunner(pool, CompetencyProjection(CATALOG))
    await runner.catch_up()
    for n, body in ((1, early), (2, late)):
        state = await learner_state(pool, learner_key(n))
        assert state is not None
        assert state.competencies == {} and state.voided == (body["id"],)
    assert await pool.fetchval("SELECT count(*) FROM competency_states") == 0


@pytest.mark.parametrize("batch", [1, 4])
async def test_state_rows_follow_the_states_batch_by_batch_through_later_voidings(
    pool: asyncpg.Pool, writer: StatementWriter, batch: int
) -> None:
    # A batch rewrites only the competency rows its events changed; after
    # every batch the rows must still be exactly the stored states' rows,
    # also when a voiding takes away a competency's only evidence.
    first = course_statement(1, "device-security", PASSED, 10)
    bodies = [first, *(course_statement(n, m, v, 10 * i) for i, (m, v) in enumerate(MODULES[:6]) for n in (1, 2))]
    # Learner 3 earns the programme (every module), then loses it to a voiding.
    third = [course_statement(3, m, v, 10 * i) for i, (m, v) in enumerate(MODULES)]
    bodies += third
    bodies += [course_statement(2, "device-security", FAILED, 900, 0.2), voiding(first["id"]), voiding(bodies[1]["id"])]
    bodies.append(voiding(third[2]["id"]))  # evaluating-sources: its only evidence
    # Learner 4 has one statement towards the programme, then none: the row goes.
    fourth = course_statement(4, "searching", PASSED, 5)
    bodies += [fourth, voiding(fourth["id"])]
    await write(writer, *bodies)
    runner = ProjectionRunner(pool, CompetencyProjection(CATALOG))
    events = await log_events(pool)
    seen_programs: set[tuple[Any, ...]] = set()
    for start in range(0, len(events), batch):
        event = events[min(start + batch, len(events)) - 1]
        await runner.apply_batch(events[start:start + batch])
        expected = sorted(
            _state_row_tuple(row)
            for raw in await pool.fetch("SELECT tenant, state FROM competency_learners")
            for row in state_rows(raw["tenant"], decode_state(raw["state"]))
        )
        stored = sorted(_state_row_tuple(tuple(r)) for r in await pool.fetch(f"SELECT {', '.join(STATE_COLUMNS)} FROM competency_states"))
        assert stored == expected, f"after position {event.position}"
        # Certification rows too: only the programmes whose certification changed are rewritten.
        expected_programs = sorted(
            _state_row_tuple(row)
            for raw in await pool.fetch("SELECT tenant, state FROM competency_learners")
            for row in certification_rows(raw["tenant"], decode_state(raw["state"]))
        )
        stored_programs = sorted(
            _state_row_tuple(tuple(r))
            for r in await pool.fetch(f"SELECT {', '.join(CERTIFICATION_COLUMNS)} FROM competency_certifications")
        )
        assert stored_programs == expected_programs, f"after position {event.position}"
        seen_programs.update(stored_programs)
    state = await learner_state(pool, learner_key(1))
    assert state is not None and f"{VN}/4.1" not in state.competencies  # its only evidence was voided
    earned = {row[1] for row in seen_programs if row[4] == "True"}
    assert earned == {learner_key(3)}, "learner 3's certification row must have been earned on the way"
    final = await pool.fetchval("SELECT earned FROM competency_certifications WHERE learner = $1", learner_key(3))
    assert final is False
    assert learner_key(4) in {row[1] for row in seen_programs}, "learner 4's row must have existed on the way"
    assert await pool.fetchval("SELECT count(*) FROM competency_certifications WHERE learner = $1", learner_key(4)) == 0


def _state_row_tuple(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(str([str(x) for x in v]) if isinstance(v, list) else str(v) for v in row)


async def test_states_kept_in_memory_are_dropped_when_someone_else_moved_the_checkpoint(
    pool: asyncpg.Pool, writer: StatementWriter
) -> None:
    """A runner keeps learner states between batches; another runner (or a
    replay) that applied events meanwhile makes it read them again."""
    first, other = ProjectionRunner(pool, CompetencyProjection(CATALOG)), ProjectionRunner(pool, CompetencyProjection(CATALOG))
    passed = [m for m, v in MODULES if v == PASSED]
    await write(writer, *(course_statement(n, passed[0], PASSED, 10) for n in range(3)))
    await first.catch_up()
    await write(writer, *(course_statement(n, passed[1], PASSED, 20) for n in range(3)))
    await other.catch_up()  # `first` has not seen these
    await write(writer, *(course_statement(n, passed[2], PASSED, 30) for n in range(3)))
    await first.catch_up()
    for n in range(3):
        state = await learner_state(pool, learner_key(n))
        assert state is not None and len({e.statement_id for e in state.evidence}) == 3
    live_digest = await digest(pool)
    await replay(pool, CompetencyProjection(CATALOG))
    assert await digest(pool) == live_digest
    # after a replay with nothing new, the kept states are still the stored ones
    await write(writer, course_statement(0, passed[3], PASSED, 40))
    await first.catch_up()
    state = await learner_state(pool, learner_key(0))
    assert state is not None and len({e.statement_id for e in state.evidence}) == 4
    after = await digest(pool)
    await replay(pool, CompetencyProjection(CATALOG))
    assert await digest(pool) == after


async def test_a_gap_is_filled_a_bounded_stretch_per_batch(pool: asyncpg.Pool, writer: StatementWriter) -> None:
    """A message far beyond the checkpoint (the stream keeps 30 days; the
    consumer was further behind) fills the gap from the log a bounded
    stretch per batch, not every event in between in one transaction."""
    await write(writer, *(course_statement(1, m, v, i) for i, (m, v) in enumerate(MODULES)))
    events = await log_events(pool)
    runner = ProjectionRunner(pool, CompetencyProjection(CATALOG))
    runner.applier.max_gap_fill = 4
    outcomes = [await runner.apply_batch([events[-1]]) for _ in range(3)]
    assert [(o.checkpoint, o.applied) for o in outcomes] == [(4, 4), (8, 4), (10, 2)]
    state = await learner_state(pool, learner_key(1))
    assert state is not None and state.certifications[f"{PROGRAM[0]}|{PROGRAM[1]}"].earned
