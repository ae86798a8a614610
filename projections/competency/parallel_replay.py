"""A replay's reading of the log shared out to forked worker processes.

The pages of the log go, in order, to workers that open (zstd), decode and interpret
them (the rules are pure) and send back only what the rebuild keeps
(evidence, voidings, failures) as msgpack; this process routes it in log
order, so "the first statement with an id" and "the first voiding" mean
what they mean in process.  (The fold that follows is shared out by
fold_shares.py.)

Where ``fork`` is not available, with one process, or for a short log (a
fork costs more than it saves), everything runs here.
"""

from __future__ import annotations

import asyncio
import ctypes
import multiprocessing
import os
import signal
import sys
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from typing import AsyncIterator, Sequence

import msgspec

from projections.competency.catalog import Catalog
from projections.competency.model import StatementEvidence, StatementVoided
from projections.competency.rebuild import LogRebuild, interpret_event

__all__ = ["can_fork", "read_log", "worker_signals", "MIN_PARALLEL_EVENTS"]

MIN_PARALLEL_EVENTS = 20_000  # the first events are read here; workers start past them

# What a forked worker reads with: the replay's catalog (set in the parent
# just before the fork; one replay per process at a time).
_CATALOG: Catalog | None = None

Page = Sequence[tuple[int, str, str, bytes]]
_MEANINGS = msgspec.msgpack.Encoder()
_READ_MEANINGS = msgspec.msgpack.Decoder(list[tuple[int, str, StatementEvidence | StatementVoided | str]])


def can_fork() -> bool:
    return "fork" in multiprocessing.get_all_start_methods()


def _workers(processes: int) -> ProcessPoolExecutor:
    # A worker that dies (killed, out of memory) breaks the pool: the
    # waiting replay gets BrokenProcessPool instead of waiting for ever.
    return ProcessPoolExecutor(
        processes, mp_context=multiprocessing.get_context("fork"), initializer=worker_signals, initargs=(os.getpid(),)
    )


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
                if processes <= 1 or done < min_parallel or not can_fork():
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


_PR_SET_PDEATHSIG = 1  # prctl option (linux/prctl.h)


def worker_signals(parent: int) -> None:
    """A worker leaves signals to the replay: it must not write to the
    parent's event-loop wakeup descriptor, and it ends on SIGTERM.  On
    Linux it is also killed when the replay (``parent``, its pid) dies, even
    by SIGKILL: it would otherwise go on copying into a scratch schema that
    the next replay then waits to drop."""
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            return
        if os.getppid() != parent:  # the replay died before the call
            os._exit(1)
