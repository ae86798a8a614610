"""A table holding states of both formats: some rows written in format 2
(each competency's fields stored), the rest in format 3 (folded again on
decode).  The learner answers are the same whichever format holds a state;
live apply over format 2 rows (new evidence, a voiding that takes a
competency's only evidence away) derives the same competency and
certification rows as a replay of the log, and the digest agrees."""

from __future__ import annotations

from typing import Any

import asyncpg

from lrs.store import StatementWriter
from projections.competency.codec import decode_state, open_state
from projections.competency.queries import learner_view
from projections.competency.rows import CERTIFICATION_COLUMNS, STATE_COLUMNS
from projections.competency.store import CompetencyProjection, digest
from projections.replay import replay
from projections.runner import ProjectionRunner
from tests.integration.competency_statements import (
    CATALOG, COMPLETED, FAILED, MODULES, PASSED, course_statement, learner_key, voiding, write,
)
from tests.unit.test_competency_codec import format_2

LEARNERS = (1, 2, 3, 4)


async def _answers(pool: asyncpg.Pool) -> dict[int, Any]:
    return {n: await learner_view(pool, CATALOG, "default", learner_key(n)) for n in LEARNERS}


async def _derived(pool: asyncpg.Pool) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    states = await pool.fetch(f"SELECT {', '.join(STATE_COLUMNS)} FROM competency_states ORDER BY 1, 2, 3")
    programs = await pool.fetch(f"SELECT {', '.join(CERTIFICATION_COLUMNS)} FROM competency_certifications ORDER BY 1, 2, 3, 4")
    return [tuple(r) for r in states], [tuple(r) for r in programs]


async def test_a_table_of_both_formats_answers_derives_and_digests_as_one_of_format_3(
    pool: asyncpg.Pool, writer: StatementWriter
) -> None:
    # 1 and 3 earn the programme, 2 has failures and a completion, 4 two modules
    bodies = [course_statement(n, m, v, 10 * i + n) for n in (1, 3) for i, (m, v) in enumerate(MODULES)]
    bodies += [course_statement(2, "searching", FAILED, 5, 0.3), course_statement(2, "searching", PASSED, 50, 0.6),
               course_statement(2, "personal-data", COMPLETED, 60)]
    bodies += [course_statement(4, m, v, 70 + i) for i, (m, v) in enumerate(MODULES[:2])]
    await write(writer, *bodies)
    await ProjectionRunner(pool, CompetencyProjection(CATALOG)).catch_up()
    answers, derived, live = await _answers(pool), await _derived(pool), await digest(pool)
    assert answers[1]["certifications"][0]["earned"] and not answers[2]["certifications"][0]["earned"]

    for n in (1, 2):  # half the table back in format 2
        raw = await pool.fetchval("SELECT state FROM competency_learners WHERE learner = $1", learner_key(n))
        await pool.execute("UPDATE competency_learners SET state = $2 WHERE learner = $1",
                           learner_key(n), format_2(decode_state(raw)))
    formats = {r["learner"]: open_state(r["state"])[:1] for r in await pool.fetch("SELECT learner, state FROM competency_learners")}
    assert formats == {learner_key(1): b"\x98", learner_key(2): b"\x98", learner_key(3): b"\x97", learner_key(4): b"\x97"}
    assert await _answers(pool) == answers
    assert await digest(pool) == live and await _derived(pool) == derived

    # live apply over both formats, by a runner with nothing cached: 1 loses
    # the programme (its only evaluating-sources pass voided), 2 masters
    # what it failed, 3 and 4 gain evidence
    first = next(b for b in bodies if b["actor"]["mbox"] == "mailto:cs1@example.gov.vn" and "evaluating-sources" in b["object"]["id"])
    await write(writer, voiding(first["id"]), course_statement(2, "searching", PASSED, 900, 0.95),
                course_statement(2, "device-security", FAILED, 905, 0.1), course_statement(3, "searching", PASSED, 910, 0.7),
                course_statement(4, "device-security", PASSED, 915))
    await ProjectionRunner(pool, CompetencyProjection(CATALOG)).catch_up()
    after = await _answers(pool)
    assert not after[1]["certifications"][0]["earned"] and answers[1]["certifications"][0]["earned"]
    live, live_derived = await digest(pool), await _derived(pool)

    await replay(pool, CompetencyProjection(CATALOG))
    assert await digest(pool) == live
    assert await _derived(pool) == live_derived
    assert await _answers(pool) == after
