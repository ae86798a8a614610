"""A replay whose learners are folded and copied in shares by forked workers,
against real PostgreSQL: the same tables as a replay in one process, and a
worker that fails or is killed fails the replay without swapping anything in."""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
from typing import Any, Callable

import asyncpg
import pytest

from lrs.store import StatementWriter
from lrs.store.pool import connect
from projections.competency import fold_shares
from projections.competency.fold_shares import ReplayWorkerFailed
from projections.competency.rebuild import LogRebuild
from projections.competency.store import CompetencyProjection, digest
from projections.replay import replay
from projections.runner import ProjectionRunner
from tests.integration.competency_statements import (
    CATALOG,
    FAILED,
    MODULES,
    course_statement,
    voiding,
    write,
)

TABLES = {
    "competency_learners": "tenant, learner, state, position",
    "competency_states": "*",
    "competency_certifications": "*",
    "competency_statement_learners": "*",
    "competency_voids": "*",
    "unit_certified": "*",
}


@pytest.fixture(autouse=True)
def fork_for_any_number_of_learners(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fold_shares, "MIN_PARALLEL_LEARNERS", 1)


async def fill(writer: StatementWriter, learners: int = 24, statements: int = 150) -> None:
    rng = random.Random(7)
    bodies: list[dict[str, Any]] = []
    for _ in range(statements):
        module, verb = rng.choice(MODULES + [("troubleshooting", FAILED)])
        bodies.append(course_statement(rng.randrange(learners), module, verb, rng.randrange(5000), rng.choice([0.5, 0.95])))
    for target in rng.sample(bodies, 12):
        bodies.insert(rng.randrange(len(bodies) + 1), voiding(target["id"]))
    await write(writer, *bodies)


async def projected(pool: asyncpg.Pool, writer: StatementWriter, learners: int = 24, statements: int = 150) -> str:
    """Fill the log, project it live, and return the live digest."""
    await fill(writer, learners, statements)
    await ProjectionRunner(pool, CompetencyProjection(CATALOG)).catch_up()
    return await digest(pool)


async def tables(pool: asyncpg.Pool) -> dict[str, list[tuple[Any, ...]]]:
    return {
        table: sorted(tuple(r) for r in await pool.fetch(f"SELECT {columns} FROM {table}"))
        for table, columns in TABLES.items()
    }


def forked_shares(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the shares handed to forked workers."""
    started: list[int] = []
    start = fold_shares._Worker.start

    def counting(work: LogRebuild, keys: Any, *args: Any) -> Any:
        started.append(len(keys))
        return start(work, keys, *args)

    monkeypatch.setattr(fold_shares._Worker, "start", counting)
    return started


async def test_a_replay_in_shares_writes_the_tables_a_replay_in_one_process_writes(
    pool: asyncpg.Pool, writer: StatementWriter, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    live = await projected(pool, writer)
    await replay(pool, CompetencyProjection(CATALOG, replay_processes=1))
    in_one = await tables(pool)
    assert await digest(pool) == live
    started = forked_shares(monkeypatch)

    await replay(pool, CompetencyProjection(CATALOG, replay_processes=3), connect=lambda: connect(database_url))
    assert len(started) == 2 and all(started)  # two workers, each with learners of its own
    assert await tables(pool) == in_one
    assert await digest(pool) == live
    assert len(in_one["competency_learners"]) == 24 and in_one["competency_voids"]


async def test_without_connect_a_replay_folds_every_share_here(
    pool: asyncpg.Pool, writer: StatementWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    live = await projected(pool, writer, learners=6, statements=40)
    started = forked_shares(monkeypatch)
    await replay(pool, CompetencyProjection(CATALOG, replay_processes=3))
    assert started == []
    assert await digest(pool) == live


def failing_in_forked_workers(call: Callable[..., Any], ending: str, error: Exception) -> Callable[..., Any]:
    """``call``, but in a forked worker (which inherits the patch) it raises
    ``error``, or, ``ending`` "is killed", dies of SIGKILL as the
    out-of-memory killer would have it."""
    replay_process = os.getpid()

    def failing(*args: Any) -> Any:
        if os.getpid() != replay_process:
            if ending == "is killed":
                os.kill(os.getpid(), signal.SIGKILL)
            raise error
        return call(*args)

    return failing


async def filled_and_caught_up(
    pool: asyncpg.Pool, writer: StatementWriter, statements: int = 150
) -> tuple[ProjectionRunner, str, int, dict[str, list[tuple[Any, ...]]]]:
    """The log filled and the live projection caught up: its runner, digest,
    checkpoint and tables, which a failed replay must leave as they are."""
    await fill(writer, statements=statements)
    runner = ProjectionRunner(pool, CompetencyProjection(CATALOG))
    await runner.catch_up()
    return runner, await digest(pool), await runner.checkpoint(), await tables(pool)


async def assert_nothing_swapped_in(
    pool: asyncpg.Pool, runner: ProjectionRunner, live: str, checkpoint: int, before: dict[str, list[tuple[Any, ...]]]
) -> None:
    """After a failed replay: no worker left, the live tables, digest and checkpoint as they were."""
    assert multiprocessing.active_children() == []
    assert await tables(pool) == before and await digest(pool) == live
    assert await runner.checkpoint() == checkpoint


@pytest.mark.parametrize("ending", ["raises", "is killed"])
async def test_a_worker_that_fails_fails_the_replay_and_swaps_nothing_in(
    ending: str, pool: asyncpg.Pool, writer: StatementWriter, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner, live, checkpoint, before = await filled_and_caught_up(pool, writer)
    fold = LogRebuild.fold

    monkeypatch.setattr(LogRebuild, "fold", failing_in_forked_workers(fold, ending, RuntimeError("cannot fold")))
    expected = "cannot fold" if ending == "raises" else "exit code -9"
    with pytest.raises(ReplayWorkerFailed, match=expected):
        await replay(pool, CompetencyProjection(CATALOG, replay_processes=2), connect=lambda: connect(database_url))
    await assert_nothing_swapped_in(pool, runner, live, checkpoint, before)

    monkeypatch.setattr(LogRebuild, "fold", fold)
    await replay(pool, CompetencyProjection(CATALOG, replay_processes=2), connect=lambda: connect(database_url))
    assert await digest(pool) == live


async def test_a_fold_that_fails_here_stops_the_workers(
    pool: asyncpg.Pool, writer: StatementWriter, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    live = await projected(pool, writer)
    replay_process = os.getpid()
    fold = LogRebuild.fold

    def failing_here(self: LogRebuild, key: Any) -> Any:
        if os.getpid() == replay_process:
            raise RuntimeError(f"cannot fold {key} here")
        return fold(self, key)

    monkeypatch.setattr(LogRebuild, "fold", failing_here)
    with pytest.raises(RuntimeError, match="here"):
        await replay(pool, CompetencyProjection(CATALOG, replay_processes=2), connect=lambda: connect(database_url))
    assert multiprocessing.active_children() == []
    assert await digest(pool) == live


async def test_a_second_replay_of_the_same_projection_is_refused_while_one_runs(
    pool: asyncpg.Pool, writer: StatementWriter
) -> None:
    from lrs.store import leader_lock
    from projections.replay import ReplayRunning

    live = await projected(pool, writer, learners=6, statements=40)
    async with pool.acquire() as holder:  # as a running replay holds it
        assert await leader_lock.try_lock(holder, leader_lock.lock_key("replay:competency"))
        with pytest.raises(ReplayRunning, match="another replay of 'competency'"):
            await replay(pool, CompetencyProjection(CATALOG))
        await leader_lock.unlock(holder, leader_lock.lock_key("replay:competency"))
    await replay(pool, CompetencyProjection(CATALOG))
    assert await digest(pool) == live
