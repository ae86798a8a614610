"""Run a connector: read chunks, map them, send batches, checkpoint in order.

Batches are sent concurrently (at most ``max_in_flight`` at a time; the reader
waits for a free slot, so memory stays bounded by a few batches), but the
cursor only moves forward in source order: a chunk's cursor is saved once
every batch holding its statements, and every batch before those, has been
answered by the LRS.  Interrupting a run at any moment therefore loses no
statement; re-running re-sends at most the unanswered tail, which deterministic
ids make harmless.
"""

from __future__ import annotations

import asyncio
import sys
from collections import deque
from dataclasses import dataclass
from typing import Any, Protocol

from connectors.framework.model import Cursor, Mapped, Mapping, Skip, Source, Summary
from connectors.framework.sink import BatchOutcome, Outgoing, SinkError


class Sink(Protocol):
    async def send(self, batch: list[Outgoing]) -> BatchOutcome: ...


class CursorStore(Protocol):
    def save(self, cursor: Cursor) -> None: ...


class OrderedCompletion:
    """Tracks which cursors are safe to save.

    Batches get increasing sequence numbers.  ``mark(cursor, upto)`` says the
    cursor is safe once batches ``0..upto`` are all done (``upto`` may be -1
    when no batch holds anything before it).  ``done(seq)`` records an answered
    batch and returns the newest cursor that became safe, if any.
    """

    def __init__(self) -> None:
        self._marks: deque[tuple[int, Cursor]] = deque()
        self._done: set[int] = set()
        self._contiguous = -1  # every batch <= this is done

    def mark(self, cursor: Cursor, upto: int) -> Cursor | None:
        self._marks.append((upto, cursor))
        return self._release()

    def done(self, seq: int) -> Cursor | None:
        self._done.add(seq)
        while self._contiguous + 1 in self._done:
            self._contiguous += 1
            self._done.discard(self._contiguous)
        return self._release()

    def _release(self) -> Cursor | None:
        released = None
        while self._marks and self._marks[0][0] <= self._contiguous:
            released = self._marks.popleft()[1]
        return released


@dataclass(slots=True)
class RunOptions:
    batch_size: int = 500
    max_in_flight: int = 4
    progress: bool | None = None  # None: only on a terminal
    description: str = "import"


async def run_connector(
    source: Source,
    mapping: Mapping,
    sink: Sink,
    checkpoint: CursorStore | None,
    cursor: Cursor | None = None,
    options: RunOptions | None = None,
) -> Summary:
    """Copy everything from ``source`` (after ``cursor``) to ``sink``."""
    options = options or RunOptions()
    summary = Summary()
    tracker = OrderedCompletion()
    slots = asyncio.Semaphore(options.max_in_flight)
    tasks: set[asyncio.Task[None]] = set()
    failure: list[BaseException] = []
    progress = _progress_bar(source, options)

    def save(safe: Cursor | None) -> None:
        if safe is not None and checkpoint is not None:
            checkpoint.save(safe)

    async def deliver(seq: int, batch: list[Outgoing]) -> None:
        try:
            outcome = await sink.send(batch)
        except BaseException as exc:  # noqa: BLE001 - reported below, stops the run
            failure.append(exc)
            return
        finally:
            slots.release()
        summary.sent += outcome.accepted
        summary.rejected.extend(outcome.rejected)
        if progress is not None:
            progress.set_postfix(sent=summary.sent, rejected=len(summary.rejected), refresh=False)
        save(tracker.done(seq))

    next_seq = 0
    pending: list[Outgoing] = []

    async def submit() -> None:
        nonlocal next_seq, pending
        await slots.acquire()
        batch, pending = pending, []
        seq, next_seq = next_seq, next_seq + 1
        task = asyncio.create_task(deliver(seq, batch))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def pump() -> None:
        async for chunk in source.chunks(cursor):
            if failure:
                return
            for item in chunk.items:
                summary.read += 1
                try:
                    result = mapping(item)
                except Exception as exc:  # a mapping bug must not end the run unreported
                    result = Skip(f"mapping error ({type(exc).__name__})", f"{item.ref}: {exc}")
                if isinstance(result, Skip):
                    summary.skipped[result.kind] += 1
                    continue
                assert isinstance(result, Mapped)
                for statement in result.statements:
                    pending.append(Outgoing(statement, item.ref))
                    if len(pending) >= options.batch_size:
                        await submit()
            # This chunk's statements sit in batches < next_seq, plus the
            # partial batch (it will get number next_seq) if it holds any.
            upto = next_seq if pending else next_seq - 1
            save(tracker.mark(chunk.cursor, upto))
            if progress is not None:
                progress.update(chunk.progress)
        if pending and not failure:
            await submit()
        summary.completed = True

    try:
        try:
            await pump()
        except SinkError as exc:  # the source itself failed (a pulled LRS is down)
            failure.append(exc)
        if tasks:
            await asyncio.gather(*list(tasks))
        if failure:
            summary.completed = False
            error = failure[0]
            if not isinstance(error, SinkError):
                raise error
            summary.error = str(error)
    finally:
        for task in list(tasks):
            task.cancel()
        if progress is not None:
            progress.close()
    return summary


def _progress_bar(source: Source, options: RunOptions) -> Any:
    enabled = options.progress if options.progress is not None else sys.stderr.isatty()
    if not enabled:
        return None
    from tqdm import tqdm

    unit = source.progress_unit
    return tqdm(
        total=source.progress_total,
        unit=unit,
        unit_scale=unit == "B",
        unit_divisor=1024 if unit == "B" else 1000,
        desc=options.description,
        file=sys.stderr,
        dynamic_ncols=True,
    )
