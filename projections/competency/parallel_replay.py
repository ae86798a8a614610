"""Folding a replay's learners in several processes.

Once a replay has read the whole log (:class:`~projections.competency.rebuild.LogRebuild`),
every learner folds on its own, so the learners are shared out to forked
worker processes: each gets the read log by inheriting this process's
memory, folds a chunk of learners and sends back what the tables need
(the encoded state and its rows).  Results come back in (tenant, learner)
order, exactly as the single-process fold gives them; a worker's exception
ends the replay as it would in process.

Where ``fork`` is not available, or for few learners (a fork costs more
than it saves), the learners are folded here, one after the other.
"""

from __future__ import annotations

import multiprocessing
import signal
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

from projections.competency.codec import encode_state
from projections.competency.rebuild import Key, LogRebuild
from projections.competency.rows import certification_rows, state_rows

__all__ = ["FoldedLearner", "fold_learners", "MIN_PARALLEL_LEARNERS"]

MIN_PARALLEL_LEARNERS = 2000
CHUNK = 256

# The log a forked worker folds from (set in the parent just before the fork).
_WORK: LogRebuild | None = None


@dataclass(frozen=True, slots=True)
class FoldedLearner:
    tenant: str
    learner: str
    state: bytes  # encode_state(...)
    position: int
    state_rows: list[tuple[Any, ...]]
    certification_rows: list[tuple[Any, ...]]


def fold_learners(
    work: LogRebuild, processes: int, *, min_parallel: int = MIN_PARALLEL_LEARNERS, chunk: int = CHUNK
) -> Iterator[FoldedLearner]:
    """Every learner of ``work`` folded, in (tenant, learner) order, by up to
    ``processes`` forked workers."""
    keys = work.prepare()
    if processes <= 1 or len(keys) < min_parallel or "fork" not in multiprocessing.get_all_start_methods():
        for key in keys:
            yield _folded(work, key)
        return
    global _WORK
    _WORK = work
    pool = multiprocessing.get_context("fork").Pool(processes, initializer=_worker_signals)
    try:
        chunks = [keys[i:i + chunk] for i in range(0, len(keys), chunk)]
        for folded in pool.imap(_fold_chunk, chunks):
            yield from folded
        pool.close()
    except BaseException:
        pool.terminate()
        raise
    finally:
        pool.join()
        _WORK = None


def _folded(work: LogRebuild, key: Key) -> FoldedLearner:
    r = work.fold(key)
    return FoldedLearner(
        r.tenant, r.state.learner, encode_state(r.state), r.position,
        state_rows(r.tenant, r.state), certification_rows(r.tenant, r.state),
    )


def _fold_chunk(keys: Sequence[Key]) -> list[FoldedLearner]:
    assert _WORK is not None, "a fold worker runs only in a fork of the replay"
    return [_folded(_WORK, key) for key in keys]


def _worker_signals() -> None:
    """A worker leaves signals to the replay: it must not write to the
    parent's event-loop wakeup descriptor, and it ends on SIGTERM."""
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
