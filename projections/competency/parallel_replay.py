"""A replay's work shared out to forked worker processes.

Reading: the pages of the log go, in order, to workers that decode and
interpret them (the rules are pure) and send back only what the rebuild
keeps (evidence, voidings, failures) as msgpack; this process routes it in
log order, so "the first statement with an id" and "the first voiding" mean
what they mean in process.

Folding: once the log is read (:class:`~projections.competency.rebuild.LogRebuild`),
every learner folds on its own, so the learners are shared out to workers
forked then: each gets the read log by inheriting this process's memory,
folds a chunk of learners and sends back what the tables need (the encoded
state and its rows), in (tenant, learner) order, exactly as the fold in
process gives them.  A worker's exception ends the replay as it would here.

Where ``fork`` is not available, with one process, or for little work (a
fork costs more than it saves), everything runs here.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any, AsyncIterator, Sequence

import msgspec

from projections.competency.catalog import Catalog
from projections.competency.codec import encode_state
from projections.competency.model import StatementEvidence, StatementVoided
from projections.competency.rebuild import Key, LogRebuild, RebuiltLearner, interpret_event
from projections.competency.rows import certification_rows, state_rows

__all__ = [
    "FoldedLearner",
    "fold_learners",
    "read_log",
    "usable_cores",
    "MIN_PARALLEL_EVENTS",
    "MIN_PARALLEL_LEARNERS",
]

MIN_PARALLEL_LEARNERS = 2000  # fewer are folded here
MIN_PARALLEL_EVENTS = 20_000  # the first events are read here; workers start past them
CHUNK = 256

# What a forked worker reads with: the replay's catalog, or its read log
# (set in the parent just before the fork; one replay per process at a time).
_CATALOG: Catalog | None = None
_WORK: LogRebuild | None = None

Page = Sequence[tuple[int, str, str, bytes]]
_MEANINGS = msgspec.msgpack.Encoder()
_READ_MEANINGS = msgspec.msgpack.Decoder(list[tuple[int, str, StatementEvidence | StatementVoided | str]])


def usable_cores() -> int:
    """The cores this process may run on (its affinity, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _can_fork() -> bool:
    return "fork" in multiprocessing.get_all_start_methods()


def _workers(processes: int) -> ProcessPoolExecutor:
    # A worker that dies (killed, out of memory) breaks the pool: the
    # waiting replay gets BrokenProcessPool instead of waiting for ever.
    return ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("fork"), initializer=_worker_signals)


async def read_log(
    work: LogRebuild, pages: AsyncIterator[Page], processes: int, *, min_parallel: int = MIN_PARALLEL_EVENTS
) -> int:
    """Feed every event of ``pages`` to ``work`` in log order, interpreted by
    up to ``processes`` forked workers once the log proves long; returns
    the last position read."""
    global _CATALOG
    position = done = 0
    executor: ProcessPoolExecutor | None = None
    pending: deque[Future[bytes]] = deque()

    async def take_oldest() -> None:
        for at, tenant, meaning in _READ_MEANINGS.decode(await asyncio.wrap_future(pending.popleft())):
            work.take(at, tenant, meaning)

    try:
        async for page in pages:
            if not page:
                continue
            position = page[-1][0]
            if executor is None:
                if processes <= 1 or done < min_parallel or not _can_fork():
                    for event in page:
                        work.add(*event)
                    done += len(page)
                    continue
                if _CATALOG is not None:
                    raise RuntimeError("another replay is reading in this process")
                _CATALOG = work.catalog
                executor = _workers(processes)
            pending.append(executor.submit(_interpret_page, [e for e in page if e[2] == "statement"]))
            while len(pending) > 2 * processes:
                await take_oldest()
        while pending:
            await take_oldest()
    finally:
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
            _CATALOG = None
    return position


def _interpret_page(page: Page) -> bytes:
    assert _CATALOG is not None, "a read worker runs only in a fork of the replay"
    kept = []
    for position, tenant, event_type, payload in page:
        meaning = interpret_event(event_type, payload, _CATALOG)
        if meaning is not None:
            kept.append((position, tenant, meaning))
    return _MEANINGS.encode(kept)


@dataclass(frozen=True, slots=True)
class FoldedLearner:
    tenant: str
    learner: str
    state: bytes  # encode_state(...)
    position: int
    state_rows: list[tuple[Any, ...]]
    certification_rows: list[tuple[Any, ...]]


async def fold_learners(
    work: LogRebuild, processes: int, *, min_parallel: int = MIN_PARALLEL_LEARNERS, chunk: int = CHUNK
) -> AsyncIterator[FoldedLearner]:
    """Every learner of ``work`` folded, in (tenant, learner) order, by up to
    ``processes`` forked workers."""
    global _WORK
    if processes <= 1 or len(work.events) < min_parallel or not _can_fork():  # one key per learner
        for learner in work.learners():
            yield _folded(learner)
        return
    keys = work.prepare()
    if _WORK is not None:
        raise RuntimeError("another replay is folding in this process")
    _WORK = work
    executor = _workers(processes)
    try:
        chunks = deque(keys[i:i + chunk] for i in range(0, len(keys), chunk))
        pending: deque[Future[list[FoldedLearner]]] = deque()
        while chunks or pending:
            while chunks and len(pending) < 2 * processes:
                pending.append(executor.submit(_fold_chunk, chunks.popleft()))
            for folded in await asyncio.wrap_future(pending.popleft()):
                yield folded
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
        _WORK = None


def _folded(r: RebuiltLearner) -> FoldedLearner:
    return FoldedLearner(
        r.tenant, r.state.learner, encode_state(r.state), r.position,
        state_rows(r.tenant, r.state), certification_rows(r.tenant, r.state),
    )


def _fold_chunk(keys: Sequence[Key]) -> list[FoldedLearner]:
    assert _WORK is not None, "a fold worker runs only in a fork of the replay"
    return [_folded(_WORK.fold(key)) for key in keys]


def _worker_signals() -> None:
    """A worker leaves signals to the replay: it must not write to the
    parent's event-loop wakeup descriptor, and it ends on SIGTERM."""
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
