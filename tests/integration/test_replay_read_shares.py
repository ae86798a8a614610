"""A replay in which every process reads the whole log from PostgreSQL and
keeps its share of the learners (projections/competency/read_shares.py),
against real PostgreSQL: the same tables, parked events and digest as a
replay in one process, and a share worker that fails or dies fails the
replay without swapping anything in."""

from __future__ import annotations

import os
from typing import Any

import asyncpg
import pytest

from lrs.store import StatementWriter
from lrs.store.pool import connect
from projections.competency import read_shares
from projections.competency.parallel_replay import ReplayWorkerFailed
from projections.competency.store import CompetencyProjection, digest
from projections.replay import replay
from projections.runner import ProjectionRunner
from tests.integration.test_projection_runner import CATALOG
from tests.integration.test_replay_read_chunks import parked
from tests.integration.test_replay_shares import (
    assert_nothing_swapped_in, failing_in_forked_workers, fill, projected, tables,
)


@pytest.fixture(autouse=True)
def shares_for_any_log(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(read_shares, "MIN_SHARED_EVENTS", 1)


async def test_a_log_read_by_every_process_rebuilds_what_one_process_rebuilds(
    pool: asyncpg.Pool, writer: StatementWriter, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    live = await projected(pool, writer)
    await replay(pool, CompetencyProjection(CATALOG, replay_processes=1))
    in_one, parked_in_one = await tables(pool), await parked(pool)
    assert await digest(pool) == live

    here: list[int] = []  # learners of each share, counted in the process that reads it
    read_share = read_shares.read_share
    replay_process = os.getpid()

    def counting(work: Any, page: Any, share: int, shares: int, elsewhere: set[str]) -> None:
        read_share(work, page, share, shares, elsewhere)
        if os.getpid() == replay_process:
            here.append(share)

    monkeypatch.setattr(read_shares, "read_share", counting)
    await replay(pool, CompetencyProjection(CATALOG, replay_processes=3), connect=lambda: connect(database_url))
    assert set(here) == {0}  # this process read share 0 (the workers, forked, the others)
    assert await tables(pool) == in_one and await parked(pool) == parked_in_one
    assert await digest(pool) == live


@pytest.mark.parametrize("ending", ["raises", "is killed"])
async def test_a_share_worker_that_fails_fails_the_replay_and_swaps_nothing_in(
    ending: str, pool: asyncpg.Pool, writer: StatementWriter, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await fill(writer)
    runner = ProjectionRunner(pool, CompetencyProjection(CATALOG))
    await runner.catch_up()
    live, checkpoint, before = await digest(pool), await runner.checkpoint(), await tables(pool)
    read_share = read_shares.read_share

    monkeypatch.setattr(read_shares, "read_share",
                        failing_in_forked_workers(read_share, ending, OSError("cannot read this share")))
    expected = (OSError, "cannot read this share") if ending == "raises" else (ReplayWorkerFailed, "exit code -9")
    with pytest.raises(expected[0], match=expected[1]):
        await replay(pool, CompetencyProjection(CATALOG, replay_processes=2), connect=lambda: connect(database_url))
    await assert_nothing_swapped_in(pool, runner, live, checkpoint, before)

    monkeypatch.setattr(read_shares, "read_share", read_share)
    await replay(pool, CompetencyProjection(CATALOG, replay_processes=2), connect=lambda: connect(database_url))
    assert await digest(pool) == live
