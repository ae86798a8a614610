"""A replay's learners folded and copied in shares, by this process and forked workers.

Once the log is read (:class:`~projections.competency.rebuild.LogRebuild`),
every learner folds on its own.  The learners, in (tenant, learner) order,
are cut into shares of about equal evidence.  This process folds the first
share and copies its rows into the empty tables; each other share goes to a
worker forked then, which inherits the read log with this process's memory,
folds its share and copies the rows itself, on its own connection to the
same tables.  Nothing travels back but a count, so the second core folds
instead of encoding and decoding what the first would copy.

A worker commits its copies itself (the tables are the replay's scratch
tables: nothing reads them before the swap).  A worker that fails or dies
fails the replay, which then swaps nothing in.

With one process, without ``connect``, where ``fork`` is not available, or
for few learners (a fork costs more than it saves), everything runs here.
"""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
from multiprocessing.connection import Connection as Pipe
from typing import Any, Awaitable, Callable, Sequence

import asyncpg

from projections.competency.codec import encode_state
from projections.competency.parallel_replay import (
    ReplayWorkerFailed, can_fork, fork_with_pipe, stop_forked, worker_signals,
)
from projections.competency.rebuild import Key, LogRebuild
from projections.competency.rows import CERTIFICATION_COLUMNS, STATE_COLUMNS, certification_rows, state_rows

__all__ = ["Connect", "ReplayWorkerFailed", "copy_learners", "MIN_PARALLEL_LEARNERS"]

MIN_PARALLEL_LEARNERS = 2000  # fewer are folded here
LEARNER_COLUMNS = ["tenant", "learner", "state", "position"]

# Opens another connection to the replay's database (for a forked worker).
Connect = Callable[[], Awaitable[asyncpg.Connection]]


async def copy_learners(
    conn: asyncpg.Connection,
    work: LogRebuild,
    processes: int,
    connect: Connect | None,
    *,
    min_parallel: int | None = None,
) -> int:
    """Fold every learner of ``work`` (read to the end) and copy the rows of
    ``competency_learners``, ``competency_states`` and
    ``competency_certifications`` into the tables on ``conn``'s search
    path, in up to ``processes`` shares (none forked for fewer learners
    than ``min_parallel``, default MIN_PARALLEL_LEARNERS); returns the
    learners copied."""
    keys = work.prepare()
    fewest = MIN_PARALLEL_LEARNERS if min_parallel is None else min_parallel
    if processes <= 1 or connect is None or len(keys) < fewest or not can_fork():
        return await copy_share(conn, work, keys)
    search_path = await conn.fetchval("SHOW search_path")
    first, *others = shares(work, keys, processes)
    workers: list[_Worker] = []
    try:
        for share in others:
            if share:  # a share can be empty (a heavy learner at the end)
                workers.append(_Worker.start(work, share, connect, search_path))
        copied = await copy_share(conn, work, first)
        for worker in workers:
            copied += await worker.finished()
    finally:
        for worker in workers:
            worker.stop()
    if copied != len(keys):
        raise ReplayWorkerFailed(f"the replay's shares copied {copied} learners of {len(keys)}")
    return copied


def shares(work: LogRebuild, keys: Sequence[Key], count: int) -> list[Sequence[Key]]:
    """``keys`` cut, in order, into ``count`` runs of about equal weight (a
    learner weighs its events, plus one for the learner itself)."""
    weights = [len(work.events[key]) + 1 for key in keys]
    total = sum(weights)
    cuts = [0]
    running = 0
    for index, weight in enumerate(weights):
        running += weight
        if len(cuts) < count and running >= total * len(cuts) / count:
            cuts.append(index + 1)
    cuts += [len(keys)] * (count + 1 - len(cuts))
    return [keys[start:end] for start, end in zip(cuts, cuts[1:])]


async def copy_share(conn: asyncpg.Connection, work: LogRebuild, keys: Sequence[Key]) -> int:
    """Fold the learners of ``keys`` and copy their rows (learners first,
    folded while PostgreSQL stores the ones before); returns the learners
    stored."""
    competencies: list[tuple[Any, ...]] = []
    programs: list[tuple[Any, ...]] = []

    def learner_rows() -> Any:
        for key in keys:
            folded = work.fold(key)
            state = folded.state
            competencies.extend(state_rows(folded.tenant, state))
            programs.extend(certification_rows(folded.tenant, state))
            yield (folded.tenant, state.learner, encode_state(state), folded.position)

    status = await conn.copy_records_to_table("competency_learners", records=learner_rows(), columns=LEARNER_COLUMNS)
    await conn.copy_records_to_table("competency_states", records=competencies, columns=STATE_COLUMNS)
    await conn.copy_records_to_table("competency_certifications", records=programs, columns=CERTIFICATION_COLUMNS)
    return int(status.split()[-1])  # "COPY n": the learners PostgreSQL stored


class _Worker:
    """One forked process copying one share; it reports the learners it
    copied, or its error, through a pipe."""

    def __init__(self, process: multiprocessing.process.BaseProcess, report: Pipe) -> None:
        self.process = process
        self.report = report

    @classmethod
    def start(cls, work: LogRebuild, keys: Sequence[Key], connect: Connect, search_path: str) -> "_Worker":
        return cls(*fork_with_pipe(_copy_share_in_worker, (work, keys, connect, search_path), "lrs-replay-share"))

    async def finished(self) -> int:
        """Wait for the worker to end; its count, or ReplayWorkerFailed."""
        loop = asyncio.get_running_loop()
        ended = loop.create_future()
        loop.add_reader(self.process.sentinel, lambda: ended.done() or ended.set_result(None))
        try:
            await ended
        finally:
            loop.remove_reader(self.process.sentinel)
        self.process.join()
        try:
            report = self.report.recv() if self.report.poll() else None
        except EOFError:  # it died before reporting
            report = None
        if self.process.exitcode != 0 or not isinstance(report, int):
            raise ReplayWorkerFailed(
                f"a replay worker failed (exit code {self.process.exitcode}): {report or 'it reported nothing'}"
            )
        return report

    def stop(self) -> None:
        stop_forked(self.process, self.report)


def _copy_share_in_worker(
    work: LogRebuild, keys: Sequence[Key], connect: Connect, search_path: str, report: Pipe, parent: int
) -> None:
    """The forked worker's body.  It runs its own selector event loop: the
    parent's loop (uvloop's, perhaps) is not usable after a fork.  The
    collector stays off: everything inherited lives until the worker ends."""
    gc.disable()
    worker_signals(parent)
    loop = asyncio.SelectorEventLoop()
    try:
        copied = loop.run_until_complete(_copy_share_on_own_connection(work, keys, connect, search_path))
    except BaseException as exc:  # reported (briefly: a pipe holds little unread), then it exits non-zero
        report.send(f"{type(exc).__name__}: {exc}"[:2000])
        raise SystemExit(1) from None
    report.send(copied)


async def _copy_share_on_own_connection(
    work: LogRebuild, keys: Sequence[Key], connect: Connect, search_path: str
) -> int:
    conn = await connect()
    try:
        await conn.execute(f"SET search_path TO {search_path}")
        return await copy_share(conn, work, keys)
    finally:
        await conn.close()
