"""Replaying the competency projection against real PostgreSQL: when a
state asks for it, the digest and tables it rebuilds, and ``lrs replay``."""

from __future__ import annotations

import random
from typing import Any

import asyncpg
import pytest

from lrs.store import StatementWriter
from lrs.store.log_reader import last_position
from projections.competency.store import CompetencyProjection, digest
from projections.replay import replay
from projections.runner import ProjectionOutdated, ProjectionRunner
from tests.integration.competency_statements import (
    CATALOG,
    COURSE,
    FAILED,
    INDEXES,
    MODULES,
    PASSED,
    STATE_STORAGE,
    course_statement,
    learner_key,
    learner_state,
    voiding,
    write,
)


async def test_state_built_with_other_frameworks_asks_for_a_replay(pool: asyncpg.Pool) -> None:
    await ProjectionRunner(pool, CompetencyProjection(CATALOG)).checkpoint()
    other = CompetencyProjection(CATALOG)
    other.catalog_digest = "0" * 64
    with pytest.raises(ProjectionOutdated, match="lrs replay competency"):
        await ProjectionRunner(pool, other).checkpoint()


async def test_replay_rebuilds_the_same_digest_and_swaps_tables(pool: asyncpg.Pool, writer: StatementWriter) -> None:
    rng = random.Random(11)
    bodies: list[dict[str, Any]] = []
    for _ in range(60):
        module, verb = rng.choice(MODULES + [("troubleshooting", FAILED)])
        bodies.append(course_statement(rng.randrange(6), module, verb, rng.randrange(3000), rng.choice([0.5, 0.75, 0.95])))
    for target in rng.sample(bodies, 8):
        bodies.insert(rng.randrange(len(bodies) + 1), voiding(target["id"]))
    await write(writer, *bodies)
    live = ProjectionRunner(pool, CompetencyProjection(CATALOG))
    await live.catch_up()
    live_digest = await digest(pool)
    assert await pool.fetchval("SELECT count(*) FROM competency_learners") == 6

    await pool.execute("UPDATE competency_learners SET state = 'tampered' WHERE learner = $1", learner_key(0))
    assert await digest(pool) != live_digest
    seen: list[tuple[int, int]] = []
    position = await replay(pool, CompetencyProjection(CATALOG), batch_size=16, progress=lambda d, t: seen.append((d, t)))
    assert position == await last_position(pool)
    assert await digest(pool) == live_digest
    assert seen[-1] == (position, position) and len(seen) > 1
    assert await pool.fetchval("SELECT count(*) FROM pg_namespace WHERE nspname = 'replay_competency'") == 0
    # the live runner carries on against the swapped-in tables
    await write(writer, course_statement(0, "personal-data", PASSED, 4000))
    assert await live.catch_up() == position + 1


def test_lrs_replay_command_rebuilds_and_prints_the_digest(
    database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from lrs.cli import main

    monkeypatch.setenv("LRS_DATABASE_URL", database_url)
    # Leave the test session's logging alone (the command would point it at its own stderr).
    monkeypatch.setattr("lrs.commands.common.setup", lambda settings, **_: None)
    assert main(["replay", "competency", "--batch-size", "10"]) == 0
    last_line = capsys.readouterr().out.strip().splitlines()[-1]
    assert last_line.startswith("replayed competency through position 0; digest ")
    assert last_line.endswith("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")  # no learners


def test_lrs_replay_prints_its_result_last_after_the_embedded_database_stops(tmp_path: Any) -> None:
    """A command's result is the last line it writes; its JSON logs (here the
    embedded PostgreSQL's stop) go to stderr before it, as every other
    command that opens the database does."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("LRS_")}
    env.update(LRS_DATA_DIR=str(tmp_path), LRS_LOG_LEVEL="info")
    done = subprocess.run(
        [sys.executable, "-m", "lrs", "replay", "competency"], env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, timeout=120,
    )
    lines = done.stdout.strip().splitlines()
    assert done.returncode == 0, done.stdout
    assert any('"postgres_stopped"' in line for line in lines), done.stdout  # the embedded database did log its stop
    assert lines[-1].startswith("replayed competency through position 0; digest "), done.stdout


async def test_replayed_tables_have_the_indexes_and_keys_of_the_live_ones(
    pool: asyncpg.Pool, writer: StatementWriter
) -> None:
    tables = list(CompetencyProjection.tables)
    await write(writer, *(course_statement(n, "searching", PASSED, n) for n in range(4)))
    before = [tuple(r) for r in await pool.fetch(INDEXES, tables)]
    assert sum(1 for r in before if r[3] == "p") == len(tables)
    await replay(pool, CompetencyProjection(CATALOG), batch_size=3)
    await replay(pool, CompetencyProjection(CATALOG))
    assert [tuple(r) for r in await pool.fetch(INDEXES, tables)] == before
    assert await pool.fetchval("SELECT count(*) FROM competency_learners") == 4
    # and the storage parameters: a state is kept in its row up to a page,
    # with room in the page for its next version, never compressed again
    options = "SELECT reloptions FROM pg_class WHERE oid = 'public.competency_learners'::regclass"
    assert await pool.fetchval(options) == ["toast_tuple_target=8160", "fillfactor=70"]
    assert await pool.fetchval(STATE_STORAGE) == "e"


async def test_a_state_built_under_another_rule_version_asks_for_a_replay_which_applies_the_rules(
    pool: asyncpg.Pool, writer: StatementWriter
) -> None:
    # a quiz answer naming the module as parent, and a platform whose masteryScore is not the table's
    answer = course_statement(1, "searching", PASSED, 0)
    answer["verb"]["id"] = "http://adlnet.gov/expapi/verbs/answered"
    answer["object"] = {"id": f"{COURSE}/modules/searching/q1"}
    answer["context"] = {"contextActivities": {"parent": [{"id": f"{COURSE}/modules/searching"}]}}
    lenient = course_statement(2, "searching", PASSED, 1, score=0.65)
    lenient["context"] = {"platform": "MobiEdu", "extensions": {"https://w3id.org/xapi/cmi5/context/extensions/masteryscore": 0.6}}
    await write(writer, answer, lenient, *(course_statement(3, m, v, i) for i, (m, v) in enumerate(MODULES)))
    live = ProjectionRunner(pool, CompetencyProjection(CATALOG))
    await live.catch_up()
    live_digest = await digest(pool)
    mismatches = await pool.fetch("SELECT statement_id::text, platform, mastery_score, statement_mastery, passed FROM competency_mastery_mismatches")
    assert [tuple(r) for r in mismatches] == [(lenient["id"], "MobiEdu", 0.7, 0.6, False)]
    assert await learner_state(pool, learner_key(1)) is None  # the answer is no evidence

    # as a projection built by the rules before this version had left it
    await pool.execute("UPDATE projection_checkpoints SET rule_version = rule_version - 1 WHERE name = 'competency'")
    with pytest.raises(ProjectionOutdated, match="lrs replay competency"):
        await ProjectionRunner(pool, CompetencyProjection(CATALOG)).checkpoint()
    await pool.execute("DELETE FROM competency_mastery_mismatches")
    await replay(pool, CompetencyProjection(CATALOG))
    assert await pool.fetchval("SELECT rule_version FROM projection_checkpoints WHERE name = 'competency'") == CompetencyProjection.rule_version
    assert await digest(pool) == live_digest
    again = await pool.fetch("SELECT statement_id::text, platform, mastery_score, statement_mastery, passed FROM competency_mastery_mismatches")
    assert [tuple(r) for r in again] == [tuple(r) for r in mismatches]
    await ProjectionRunner(pool, CompetencyProjection(CATALOG)).checkpoint()  # up to date again
