"""A replay whose log is read in chunks by this process and forked workers,
each reading the chunks it claims from PostgreSQL on its own connection, against real
PostgreSQL: the same tables and digest as a replay read in one process, and
a read worker that fails or dies fails the replay without swapping
anything in."""

from __future__ import annotations

import multiprocessing
import os
import time
from typing import Any

import asyncpg
import pytest

from lrs.store import StatementWriter
from lrs.store.pool import connect
from projections.competency import parallel_replay
from projections.competency.parallel_replay import ReplayWorkerFailed, chunks
from projections.competency.store import CompetencyProjection, digest
from projections.replay import LogPages, replay
from tests.integration.competency_statements import CATALOG
from tests.integration.test_replay_shares import (
    assert_nothing_swapped_in, failing_in_forked_workers, filled_and_caught_up, projected, tables,
)


@pytest.fixture(autouse=True)
def read_in_ranges_for_any_log(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parallel_replay, "MIN_PARALLEL_EVENTS", 1)


def small_chunks(monkeypatch: pytest.MonkeyPatch, size: int = 7) -> list[int]:
    """Pages (and so chunks) of ``size`` events, read slowly here so that
    the workers (which take a while to connect) claim some of them;
    returns the list the forked read workers' pids are added to."""
    started: list[int] = []
    replay_process = os.getpid()
    interpret = parallel_replay._interpret

    def slowly_here(page: Any, catalog: Any) -> Any:
        if os.getpid() == replay_process:
            time.sleep(0.02)
        return interpret(page, catalog)

    monkeypatch.setattr(parallel_replay, "_interpret", slowly_here)
    start = parallel_replay._ChunkReader.start
    between = LogPages.__init__

    def small_pages(self: LogPages, *args: Any, **kwargs: Any) -> None:
        between(self, *args, **kwargs)
        self.page_size = size

    def recording(*args: Any) -> Any:
        reader = start(*args)
        started.append(reader.process.pid)
        return reader

    monkeypatch.setattr(LogPages, "__init__", small_pages)
    monkeypatch.setattr(parallel_replay._ChunkReader, "start", recording)
    return started


async def parked(pool: asyncpg.Pool) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in await pool.fetch("SELECT position, tenant, error FROM projection_parked ORDER BY position")]


def test_by_default_every_process_reads_the_log() -> None:
    assert CompetencyProjection(CATALOG, replay_processes=2).replay_readers == 2
    assert CompetencyProjection(CATALOG, replay_processes=3).replay_readers == 3
    assert CompetencyProjection(CATALOG, replay_processes=2, replay_readers=2).replay_readers == 2


def test_the_readers_are_some_of_the_processes_never_more() -> None:
    """``lrs replay --readers``: "of those" (the --processes); with
    ``--processes 1`` (this process only) no read worker is forked."""
    assert CompetencyProjection(CATALOG, replay_processes=1, replay_readers=4).replay_readers == 1
    assert CompetencyProjection(CATALOG, replay_processes=2, replay_readers=3).replay_readers == 2


def test_the_chunks_cover_the_log_once_in_order() -> None:
    for total in (0, 1, 2, 7, 100, 200_001):
        for size in (1, 7, 10_000):
            runs = chunks(total, size)
            assert [p for after, upto in runs for p in range(after + 1, upto + 1)] == list(range(1, total + 1))
            assert all(upto - after <= size for after, upto in runs)


async def test_a_log_read_in_chunks_rebuilds_what_one_process_rebuilds(
    pool: asyncpg.Pool, writer: StatementWriter, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    live = await projected(pool, writer)
    await replay(pool, CompetencyProjection(CATALOG, replay_processes=1))
    in_one = await tables(pool)
    parked_in_one = await parked(pool)
    assert await digest(pool) == live
    started = small_chunks(monkeypatch)
    claimed: list[int] = []
    interpret = parallel_replay._interpret
    # Each side waits for the other once, so that both read some of the log
    # however the machine's load orders the processes: a worker claims its
    # first chunk only once this process interprets its own (so has claimed
    # one), and this process goes on only once a worker has claimed a chunk.
    worker_claimed = multiprocessing.get_context("fork").Event()
    here_claimed = multiprocessing.get_context("fork").Event()
    read_claimed = parallel_replay._read_claimed

    def claiming(catalog: Any, pages: Any, runs: Any, claim: Any, outbox: Any) -> Any:
        def told() -> int | None:
            assert here_claimed.wait(60), "this process never claimed a chunk"
            index = claim()
            if index is not None:
                worker_claimed.set()
            return index

        return read_claimed(catalog, pages, runs, told, outbox)

    def counting(page: Any, catalog: Any) -> Any:
        if not claimed:
            here_claimed.set()
            assert worker_claimed.wait(60), "no read worker claimed a chunk"
        claimed.append(len(page))  # chunks read here (a worker's are counted in its own memory)
        return interpret(page, catalog)

    monkeypatch.setattr(parallel_replay, "_read_claimed", claiming)
    monkeypatch.setattr(parallel_replay, "_interpret", counting)
    total = await pool.fetchval("SELECT position FROM log_head")

    await replay(pool, CompetencyProjection(CATALOG, replay_processes=3), connect=lambda: connect(database_url))
    assert len(started) == 2  # two workers
    assert 0 < sum(claimed) < total  # this process read some of the chunks, the workers the others
    assert await tables(pool) == in_one and await parked(pool) == parked_in_one
    assert await digest(pool) == live


@pytest.mark.parametrize("ending", ["raises", "is killed"])
async def test_a_read_worker_that_fails_fails_the_replay_and_swaps_nothing_in(
    ending: str, pool: asyncpg.Pool, writer: StatementWriter, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner, live, checkpoint, before = await filled_and_caught_up(pool, writer)
    interpret = parallel_replay.interpret_event

    small_chunks(monkeypatch)
    monkeypatch.setattr(parallel_replay, "interpret_event",
                        failing_in_forked_workers(interpret, ending, OSError("cannot read this range")))
    expected = (OSError, "cannot read this range") if ending == "raises" else (ReplayWorkerFailed, "exit code -9")
    with pytest.raises(expected[0], match=expected[1]):
        await replay(pool, CompetencyProjection(CATALOG, replay_processes=2, replay_readers=2),
                     connect=lambda: connect(database_url))
    await assert_nothing_swapped_in(pool, runner, live, checkpoint, before)

    monkeypatch.setattr(parallel_replay, "interpret_event", interpret)
    await replay(pool, CompetencyProjection(CATALOG, replay_processes=2, replay_readers=2),
                 connect=lambda: connect(database_url))
    assert await digest(pool) == live
