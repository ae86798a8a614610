"""The pipes between the processes of a replay read in shares
(projections/competency/read_shares.py): one each way between every two
(:class:`Links`), a message read whole or what its writer raised
(:func:`receive`, :func:`received`), and the hints written by a thread of
their own (:class:`HintSender`)."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import pickle
import queue
import threading
from typing import Any, Callable

from projections.competency.parallel_replay import ReplayWorkerFailed, _widen, ended_in_message, wait_readable

__all__ = ["HINTS_ABANDONED_SECONDS", "HintSender", "Links", "receive", "received", "send"]

# How long a process of those that failed lets the hint being written finish
# before it sends its error (the others read on unless they failed too).
HINTS_ABANDONED_SECONDS = 10.0


class Links:
    """The pipes between the processes of a replay read in shares: one each
    way between every two, each read by one process and written by one."""

    def __init__(self, shares: int) -> None:
        context = multiprocessing.get_context("fork")
        self.shares = shares
        self.pipes = {(a, b): context.Pipe(duplex=False) for a in range(shares) for b in range(shares) if a != b}
        for receiving, _ in self.pipes.values():
            _widen(receiving)
        # (to, from) pipes a thread of this process may still be writing a
        # message to (HintSender.abandon): nothing else may be written to them.
        self.busy: set[tuple[int, int]] = set()

    def keep(self, share: int) -> None:
        """Close every end ``share``'s process does not use (so that it sees
        the end of a pipe whose writer died)."""
        for (a, b), (receiving, sending) in self.pipes.items():
            if b != share:
                receiving.close()
            if a != share:
                sending.close()

    def to(self, share: int, frm: int) -> Any:
        return self.pipes[(frm, share)][1]

    def of(self, share: int, frm: int) -> Any:
        return self.pipes[(frm, share)][0]

    def send_error(self, frm: int, report: bytes) -> None:
        """Tell every other process what ``frm``'s raised (``report``,
        pickled), except through a pipe a message is still being written to
        (it would land inside that message): that process sees this one end
        in the middle of it instead."""
        for other in range(self.shares):
            if other != frm and (other, frm) not in self.busy:
                with contextlib.suppress(OSError):
                    self.to(other, frm).send_bytes(b"e" + report)


async def receive(pipe: Any, what: str) -> bytes:
    """The next message on ``pipe``; ReplayWorkerFailed when its writer ended
    first, what it raised when it sent that."""
    await wait_readable([pipe])
    return received(pipe.recv_bytes, what)


def send(links: Links, share: int, frm: int, message: bytes) -> None:
    """Send ``message`` from share ``frm`` to ``share``.  A broken pipe means
    that share's process has ended: see :func:`_ended`."""
    try:
        links.to(share, frm).send_bytes(message)
    except BrokenPipeError:
        _ended(links, share, frm)


def _ended(links: Links, share: int, frm: int) -> None:
    """Raise what the process of ``share``, which has ended, sent ``frm``
    before it ended (its error), or ReplayWorkerFailed when it was killed,
    rather than the broken pipe ``frm`` met writing to it (which of the two
    a process meets is a matter of timing)."""
    pipe = links.of(frm, share)
    while True:  # what it sent before its error (hints, reports) is of no use now
        received(pipe.recv_bytes, "its error")


class HintSender:
    """The hints a process of a replay read in shares sends while it reads,
    written by a thread of their own: a process blocked writing hints to a
    full pipe would not read the other's, and two such processes would wait
    on each other for ever (a page's hints, what was judged of the other's
    learners' statements on it as share_judging.EvidenceHint, are about half
    a page of them with two shares, against a pipe of 64 KB or less when it
    could not be widened)."""

    def __init__(self, links: Links, share: int) -> None:
        self.links, self.share = links, share
        self.outbox: queue.SimpleQueue[tuple[int, bytes | bytearray] | None] = queue.SimpleQueue()
        self.ended: list[int] = []  # the shares whose pipe broke: their process ended
        self.writing: int | None = None  # the share a message is being written to
        loop = asyncio.get_running_loop()
        self.written = loop.create_future()
        self.thread = threading.Thread(
            target=self._write, args=(lambda: loop.call_soon_threadsafe(self.written.set_result, None),),
            name="lrs-replay-hints", daemon=True,
        )
        self.thread.start()

    def send(self, other: int, message: bytes | bytearray) -> None:
        self.outbox.put((other, message))

    def _write(self, done: Callable[[], None]) -> None:
        try:
            while (item := self.outbox.get()) is not None:
                other, message = item
                if other not in self.ended:
                    self.writing = other
                    try:
                        self.links.to(other, self.share).send_bytes(message)
                    except BrokenPipeError:
                        self.ended.append(other)
                    self.writing = None
        finally:
            with contextlib.suppress(RuntimeError):  # the loop closed: nobody waits
                done()

    async def finish(self) -> None:
        """Once every hint is written (the others read them as they read
        on); what an ended process sent, if one did."""
        self.outbox.put(None)
        await self.written
        for other in self.ended:
            _ended(self.links, other, self.share)

    def abandon(self) -> None:
        """After a failure here: the hints queued are not sent, the one being
        written is let finish (for a while) so that the error sent next does
        not land in the middle of it; past that, its pipe is left busy (or
        every pipe, when it cannot be told which) and the error goes to the
        other processes only (Links.send_error)."""
        while not self.outbox.empty():
            with contextlib.suppress(queue.Empty):
                self.outbox.get_nowait()
        self.outbox.put(None)
        self.thread.join(HINTS_ABANDONED_SECONDS)
        if self.thread.is_alive():
            writing = self.writing
            others = [writing] if writing is not None else [o for o in range(self.links.shares) if o != self.share]
            self.links.busy.update((other, self.share) for other in others)


def received(recv: Callable[[], bytes], what: str) -> bytes:
    """The message ``recv`` reads from a pipe: ReplayWorkerFailed when its
    writer ended first, what it raised when it sent that."""
    try:
        message: bytes = recv()
    except EOFError:
        raise ReplayWorkerFailed(f"a replay share process ended before sending {what}") from None
    except OSError as exc:
        if not ended_in_message(exc):
            raise
        raise ReplayWorkerFailed(f"a replay share process ended while sending {what}") from None
    if message[:1] == b"e":
        raise pickle.loads(message[1:])
    return message
