"""A replay's reading of the log shared out to forked worker processes.

Given the replay's :class:`~projections.replay.LogPages` (with another
connection to open), the log is cut into chunks of a page of positions.
This process and each forked worker claim the next unread chunk in turn
(a counter they share), read it from PostgreSQL themselves, each on its own
connection, open (zstd), decode and interpret it (the rules are pure); a
worker sends back only what the rebuild keeps (evidence, voidings,
failures) as msgpack.  Nothing is read twice and no page travels between
processes.  Given plain pages, they go, in order, to a pool of workers
that interpret them the same way.

Either way this process routes what was kept in log order, so "the first
statement with an id" and "the first voiding" mean what they mean in
process.  (The fold that follows is shared out by fold_shares.py.)

Where ``fork`` is not available, with one process, or for a short log (a
fork costs more than it saves), everything runs here.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import fcntl
import gc
import multiprocessing
import os
import pickle
import queue
import signal
import struct
import sys
import threading
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from multiprocessing.connection import Connection as Pipe
from typing import AsyncIterator, Callable, Sequence

import msgspec

from projections.competency.catalog import Catalog
from projections.competency.model import StatementEvidence, StatementVoided
from projections.competency.rebuild import LogRebuild, interpret_event
from projections.log_chain import PageChain
from projections.replay import LogPages

__all__ = ["can_fork", "chunks", "ended_in_message", "fork_with_pipe", "read_log", "stop_forked", "wait_readable",
           "worker_signals", "ReplayWorkerFailed", "MIN_PARALLEL_EVENTS"]

MIN_PARALLEL_EVENTS = 20_000  # the first events are read here; workers start past them

# What a forked worker reads with: the replay's catalog (set in the parent
# just before the fork; one replay per process at a time).
_CATALOG: Catalog | None = None

Page = Sequence[tuple[int, str, str, bytes]]
_MEANINGS = msgspec.msgpack.Encoder()
_READ_MEANINGS = msgspec.msgpack.Decoder(list[tuple[int, str, StatementEvidence | StatementVoided | str]])
# What a read worker sends of a chunk: its chain, what it keeps.
_READ_CHUNK = msgspec.msgpack.Decoder(tuple[PageChain, list[tuple[int, str, StatementEvidence | StatementVoided | str]]])


class ReplayWorkerFailed(RuntimeError):
    """A forked worker of a replay raised or died."""


def can_fork() -> bool:
    return "fork" in multiprocessing.get_all_start_methods()


def _workers(processes: int) -> ProcessPoolExecutor:
    # A worker that dies (killed, out of memory) breaks the pool: the
    # waiting replay gets BrokenProcessPool instead of waiting for ever.
    return ProcessPoolExecutor(
        processes, mp_context=multiprocessing.get_context("fork"), initializer=worker_signals, initargs=(os.getpid(),)
    )


async def read_log(
    work: LogRebuild, pages: AsyncIterator[Page], processes: int, *, min_parallel: int | None = None
) -> int:
    """Feed every event of ``pages`` to ``work`` in log order, interpreted by
    up to ``processes`` processes (this one and forked workers) once the log
    proves long (``min_parallel`` events, default MIN_PARALLEL_EVENTS);
    returns the last position read.  ``pages`` that can be read by range
    elsewhere (:class:`~projections.replay.LogPages` with ``connect``) are
    read in chunks, each by the process that claims it."""
    if min_parallel is None:
        min_parallel = MIN_PARALLEL_EVENTS
    if isinstance(pages, LogPages) and pages.connect is not None:
        if processes > 1 and pages.total >= max(min_parallel, 1) and can_fork():
            return await _read_chunks(work, pages, processes)
    return await _read_pages(work, pages, processes, min_parallel)


def chunks(total: int, size: int) -> list[tuple[int, int]]:
    """The log of ``total`` events cut into runs of ``size`` positions
    (after, upto], in order."""
    return [(after, min(after + size, total)) for after in range(0, total, size)]


Kept = list[tuple[int, str, StatementEvidence | StatementVoided | str]]


async def _read_chunks(work: LogRebuild, pages: LogPages, processes: int) -> int:
    """This process and ``processes`` - 1 forked workers each claim the next
    unread chunk of the log in turn, read it and interpret it; what the
    workers keep comes back through a pipe.  This process routes every
    chunk in log order as soon as the chunks before it are routed, so it
    claims fewer chunks the more it routes for the workers: the share of
    each follows from what its chunks cost, whatever the mix of the log.
    Each chunk's chain (checked by the process that read it) is walked
    here in log order as the chunk is routed (``pages.walk``)."""
    runs = chunks(pages.total, pages.page_size)
    claimed = multiprocessing.get_context("fork").Value("q", 0)

    def claim() -> int | None:
        with claimed.get_lock():
            index = claimed.value
            if index >= len(runs):
                return None
            claimed.value = index + 1
            return index

    readers: list[_ChunkReader] = []
    # read, not yet routed: its chain and what it keeps, read here, or by a worker (msgpack)
    done: dict[int, tuple[PageChain, Kept] | bytes] = {}
    routed = 0

    def route_ready() -> None:
        nonlocal routed
        while routed in done:
            read = done.pop(routed)
            chain, kept = _READ_CHUNK.decode(read) if isinstance(read, bytes) else read
            pages.walk.page(chain)
            for at, tenant, meaning in kept:
                work.take(at, tenant, meaning)
            pages.reached(runs[routed][1])
            routed += 1

    try:
        for _ in range(processes - 1):
            readers.append(_ChunkReader.start(work.catalog, pages, runs, claim))
        index = claim()
        upcoming = None if index is None else asyncio.ensure_future(pages.fetch(*runs[index]))
        try:
            while upcoming is not None and index is not None:
                page, chain = await upcoming
                following = claim()  # read the next chunk while this one is interpreted
                upcoming = None if following is None else asyncio.ensure_future(pages.fetch(*runs[following]))
                done[index] = (chain, _interpret(page, work.catalog))
                for reader in readers:
                    reader.collect(done)
                route_ready()
                index = following
        finally:
            if upcoming is not None and not upcoming.done():
                upcoming.cancel()
                with contextlib.suppress(BaseException):
                    await upcoming
        while routed < len(runs):
            waiting = [reader for reader in readers if not reader.finished]
            if not waiting:
                raise ReplayWorkerFailed(f"chunk {routed} of the log was claimed and never read")
            await _any_readable(waiting)
            for reader in waiting:
                reader.collect(done)
            route_ready()
        for reader in readers:
            await reader.wait_finished()
    finally:
        for reader in readers:
            reader.stop()
    pages.walk.end()  # the chain reaches the log's end before anything is folded from it
    return runs[-1][1] if runs else 0


def _interpret(page: Page, catalog: Catalog) -> Kept:
    kept = []
    for position, tenant, event_type, payload in page:
        if event_type == "statement":
            meaning = interpret_event(event_type, payload, catalog)
            if meaning is not None:
                kept.append((position, tenant, meaning))
    return kept


async def _any_readable(readers: Sequence["_ChunkReader"]) -> None:
    await wait_readable([reader.pipe for reader in readers])


async def wait_readable(pipes: Sequence[Pipe]) -> None:
    """Until one of ``pipes`` has something to read, each left blocking or
    not as it was.  uvloop's add_reader (libuv's poll handle) makes the
    descriptor non-blocking and leaves it so, while Connection.recv_bytes
    reads a message as if it blocked: the read of a message whose writer
    had not written all of it yet raised BlockingIOError.  Left blocking,
    the read waits for the rest, which the writer is writing (nothing that
    writes a message waits for its reader to do anything but read it)."""
    if any(pipe.poll() for pipe in pipes):
        return
    loop = asyncio.get_running_loop()
    readable = loop.create_future()
    fds = [pipe.fileno() for pipe in pipes]
    blocking = [os.get_blocking(fd) for fd in fds]
    for fd in fds:
        loop.add_reader(fd, lambda: readable.done() or readable.set_result(None))
    try:
        await readable
    finally:
        for fd, was in zip(fds, blocking):
            loop.remove_reader(fd)
            os.set_blocking(fd, was)


def ended_in_message(exc: OSError) -> bool:
    """Whether Connection.recv_bytes raised ``exc`` because the writer ended
    in the middle of a message (an OSError of no errno, unlike the reads'
    own)."""
    return exc.errno is None


class _ChunkReader:
    """A forked worker claiming chunks of the log, reading them on its own
    connection and sending back, chunk by chunk, what the rebuild keeps."""

    def __init__(self, process: multiprocessing.process.BaseProcess, pipe: Pipe) -> None:
        self.process = process
        self.pipe = pipe
        self.finished = False

    @classmethod
    def start(
        cls, catalog: Catalog, pages: LogPages, runs: list[tuple[int, int]], claim: Callable[[], int | None]
    ) -> "_ChunkReader":
        return cls(*fork_with_pipe(_read_chunks_in_worker, (catalog, pages, runs, claim), "lrs-replay-read", wide=True))

    def collect(self, done: dict[int, tuple[PageChain, Kept] | bytes]) -> None:
        """Everything the worker has sent so far, into ``done``; raises what it raised."""
        while not self.finished and self.pipe.poll():
            try:
                message = self.pipe.recv_bytes()
            except (EOFError, OSError) as exc:
                if isinstance(exc, OSError) and not ended_in_message(exc):
                    raise
                self.process.join()
                raise ReplayWorkerFailed(
                    f"a replay read worker ended before its chunks were read (exit code {self.process.exitcode})"
                ) from None
            kind = message[:1]
            if kind == b"m":
                (index,) = _INDEX.unpack_from(message, 1)
                done[index] = message[1 + _INDEX.size:]
            elif kind == b"d":
                self.finished = True
            else:  # b"e": what it raised (a payload that does not open: the log is damaged)
                raise pickle.loads(message[1:])

    async def wait_finished(self) -> None:
        while not self.finished:
            await _any_readable([self])
            self.collect({})

    def stop(self) -> None:
        stop_forked(self.process, self.pipe)


def fork_with_pipe(
    target: Callable[..., None], args: tuple, name: str, *, wide: bool = False
) -> tuple[multiprocessing.process.BaseProcess, Pipe]:
    """A forked daemon process running ``target(*args, sender, parent pid)``
    and the receiving end of its one-way pipe (``wide``: of PIPE_BYTES);
    the sending end is closed here, so the receiver sees EOF when it dies."""
    pipe, sender = multiprocessing.Pipe(duplex=False)
    if wide:
        _widen(pipe)
    process = multiprocessing.get_context("fork").Process(
        target=target, args=(*args, sender, os.getpid()), name=name, daemon=True
    )
    process.start()
    sender.close()
    return process, pipe


def stop_forked(process: multiprocessing.process.BaseProcess, pipe: Pipe) -> None:
    """Kill a worker of fork_with_pipe if it still runs, reap it, close its pipe."""
    if process.is_alive():
        process.kill()
    process.join()
    pipe.close()


_INDEX = struct.Struct("<q")
PIPE_BYTES = 1 << 20  # Linux's default most for an unprivileged process (/proc/sys/fs/pipe-max-size)


def _widen(pipe: Pipe) -> None:
    """A chunk's msgpack is a few MB: in a pipe of 1 MB rather than 64 KB
    it crosses in a few reads instead of dozens (a switch between the
    processes each)."""
    setting = getattr(fcntl, "F_SETPIPE_SZ", None)
    if setting is not None:
        with contextlib.suppress(OSError):
            fcntl.fcntl(pipe.fileno(), setting, PIPE_BYTES)


def _read_chunks_in_worker(
    catalog: Catalog,
    pages: LogPages,
    runs: list[tuple[int, int]],
    claim: Callable[[], int | None],
    sender: Pipe,
    parent: int,
) -> None:
    """The forked read worker's body: its own selector event loop (the
    parent's is not usable after a fork) and its own connection; a thread
    sends what it kept while it reads on, so it does not wait for the
    replay to take it.  The collector stays off: little is freed."""
    gc.disable()
    worker_signals(parent)
    outbox: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()

    def send() -> None:
        while (message := outbox.get()) is not None:
            sender.send_bytes(message)

    mailer = threading.Thread(target=send, name="lrs-replay-read-sender", daemon=True)
    mailer.start()
    loop = asyncio.SelectorEventLoop()
    try:
        loop.run_until_complete(_read_claimed(catalog, pages, runs, claim, outbox))
        outbox.put(b"d")
    except BaseException as exc:
        try:
            report = pickle.dumps(exc)
        except Exception:
            report = pickle.dumps(ReplayWorkerFailed(f"{type(exc).__name__}: {exc}"[:2000]))
        outbox.put(b"e" + report)
        outbox.put(None)
        mailer.join()
        raise SystemExit(1) from None
    outbox.put(None)
    mailer.join()


async def _read_claimed(
    catalog: Catalog,
    pages: LogPages,
    runs: list[tuple[int, int]],
    claim: Callable[[], int | None],
    outbox: "queue.SimpleQueue[bytes | None]",
) -> None:
    conn = await pages.connect()  # type: ignore[misc]
    try:
        index = claim()
        upcoming = None if index is None else asyncio.ensure_future(pages.fetch(*runs[index], conn=conn))
        while upcoming is not None and index is not None:
            page, chain = await upcoming
            following = claim()
            upcoming = None if following is None else asyncio.ensure_future(pages.fetch(*runs[following], conn=conn))
            outbox.put(b"m" + _INDEX.pack(index) + _MEANINGS.encode((chain, _interpret(page, catalog))))
            index = following
    finally:
        await conn.close()


async def _read_pages(work: LogRebuild, pages: AsyncIterator[Page], processes: int, min_parallel: int) -> int:
    """Pages interpreted here, or by a pool of forked workers they are sent to."""
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
                    work.add_page(page)
                    done += len(page)
                    continue
                if _CATALOG is not None:
                    raise RuntimeError("another replay is reading in this process")
                _CATALOG = work.catalog
                executor = _workers(processes)
            pending.append(executor.submit(_interpret_page, [tuple(e) for e in page if e[2] == "statement"]))
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
