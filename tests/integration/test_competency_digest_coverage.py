"""The audit digest covers the rows answers are read from, not only the states.

A unit's learners, summaries and reports read ``competency_states`` and
``competency_certifications``; the mastery mismatches read their own table.
A row altered by hand in any of them (the states in ``competency_learners``
left as they were) changes the digest, and a replay gives back the digest of
the live projection; format 2 and format 3 states of the same learners give
the same digest, and so do sessions with other time zones and float
output settings.
"""

from __future__ import annotations

import asyncpg
import pytest

from lrs.store import StatementWriter
from projections.competency.codec import decode_state
from projections.competency.store import CompetencyProjection, digest
from projections.replay import replay
from projections.runner import ProjectionRunner
from tests.integration.competency_statements import CATALOG, FAILED, MODULES, PASSED, course_statement, learner_key, write
from tests.unit.test_competency_codec import format_2

MASTERY = "https://w3id.org/xapi/cmi5/context/extensions/masteryscore"
ALTERATIONS = {
    "a certification earned by hand": (
        "UPDATE competency_certifications SET earned = true, earned_at = now() WHERE learner = $1", 2),
    "a certification's statements": (
        "UPDATE competency_certifications SET statement_ids = statement_ids[2:] WHERE learner = $1", 1),
    "a certification's known time": (
        "UPDATE competency_certifications SET known_at = known_at + interval '1 microsecond' WHERE learner = $1", 1),
    "a competency mastered by hand": (
        "UPDATE competency_states SET status = 'mastered' WHERE ctid = "
        "(SELECT ctid FROM competency_states WHERE learner = $1 AND status = 'in_progress' LIMIT 1)", 2),
    "a competency's best score": (
        "UPDATE competency_states SET best_score = best_score + 1e-12 WHERE ctid = "
        "(SELECT ctid FROM competency_states WHERE learner = $1 AND best_score IS NOT NULL LIMIT 1)", 1),
    "a competency row removed": (
        "DELETE FROM competency_states WHERE ctid = (SELECT ctid FROM competency_states WHERE learner = $1 LIMIT 1)", 1),
    "a mismatch row's platform": ("UPDATE competency_mastery_mismatches SET platform = 'elsewhere' WHERE learner = $1", 2),
}


@pytest.fixture
async def projected(pool: asyncpg.Pool, writer: StatementWriter) -> str:
    """1 earns the programme; 2 failed a module, on a platform whose
    masteryScore is not the table's.  The live projection's digest."""
    lenient = course_statement(2, "searching", FAILED, 100, 0.3)
    lenient["context"] = {"platform": "MobiEdu", "extensions": {MASTERY: 0.25}}
    await write(writer, *(course_statement(1, m, v, i) for i, (m, v) in enumerate(MODULES)),
                course_statement(2, "personal-data", PASSED, 90), lenient)
    await ProjectionRunner(pool, CompetencyProjection(CATALOG)).catch_up()
    return await digest(pool)


@pytest.mark.parametrize("alteration", sorted(ALTERATIONS))
async def test_an_altered_row_changes_the_digest_and_a_replay_restores_it(
    pool: asyncpg.Pool, projected: str, alteration: str
) -> None:
    sql, learner = ALTERATIONS[alteration]
    states = await pool.fetch("SELECT learner, state FROM competency_learners ORDER BY learner")
    assert (await pool.execute(sql, learner_key(learner))).split()[-1] == "1"  # one row altered
    assert await pool.fetch("SELECT learner, state FROM competency_learners ORDER BY learner") == states
    assert await digest(pool) != projected
    await replay(pool, CompetencyProjection(CATALOG))
    assert await digest(pool) == projected  # a rebuild from the log and the live projection agree


async def test_every_covered_table_has_rows_and_formats_digest_alike(pool: asyncpg.Pool, projected: str) -> None:
    for table in ("competency_states", "competency_certifications", "competency_mastery_mismatches"):
        assert await pool.fetchval(f"SELECT count(*) FROM {table}") > 0, table
    async with pool.acquire() as conn:  # the rows' form does not depend on the session's settings
        await conn.execute("SET TimeZone = 'Asia/Ho_Chi_Minh'; SET extra_float_digits = -3; SET DateStyle = 'German'")
        assert await digest(conn) == projected
        await conn.execute("RESET ALL")
    for row in await pool.fetch("SELECT tenant, learner, state FROM competency_learners"):
        await pool.execute("UPDATE competency_learners SET state = $3 WHERE tenant = $1 AND learner = $2",
                           row["tenant"], row["learner"], format_2(decode_state(row["state"])))
    assert await digest(pool) == projected
