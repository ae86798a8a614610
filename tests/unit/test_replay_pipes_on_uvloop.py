"""The pipes between a replay's processes, read on uvloop (the loop the
service and the CLI run on): a message that arrives in parts, its writer
pausing in the middle of it (descheduled on a loaded machine, or between
the header and the payload that multiprocessing writes apart), is received
whole, both when the reader waited for the pipe to be readable and when it
reads what poll() says has come; a writer that ends in the middle of a
message fails the replay with ReplayWorkerFailed.

libuv's poll handle, behind uvloop's add_reader, leaves the descriptor
non-blocking, while multiprocessing's Connection.recv_bytes reads as if it
blocked: the read of the part not yet written raised BlockingIOError."""

from __future__ import annotations

import array
import asyncio
import contextlib
import fcntl
import multiprocessing
import os
import struct
import termios
import threading
import time
from multiprocessing.connection import Connection
from typing import Any, Awaitable, Callable

import pytest

from projections.competency import parallel_replay, share_pipes
from projections.competency.parallel_replay import ReplayWorkerFailed

uvloop = pytest.importorskip("uvloop")

MESSAGE = bytes(range(256)) * 1024  # 256 KB: more than a pipe of 64 KB holds
FIRST_PART = 16 * 1024
PAUSE = 0.2  # seconds the writer stops after the reader took the first part


def _unread(fd: int) -> int:
    count = array.array("i", [0])
    fcntl.ioctl(fd, termios.FIONREAD, count)
    return count[0]


def _write_in_two_parts(receiving: Connection, sending: Connection, message: bytes, *, end: bool = False) -> threading.Thread:
    """A thread writing ``message`` framed as Connection.send_bytes frames
    it (a 4-byte length, then the bytes): the first part, then, once the
    reader has taken it and PAUSE later, the rest (``end``: closes the
    pipe instead, a writer that died in the middle of the message)."""
    framed = struct.pack("!i", len(message)) + message
    fd = sending.fileno()

    def write() -> None:
        os.write(fd, framed[:FIRST_PART])
        with contextlib.suppress(OSError):  # the reader failed and closed its end
            deadline = time.monotonic() + 10
            while _unread(receiving.fileno()) and time.monotonic() < deadline:
                time.sleep(0.001)
            time.sleep(PAUSE)
            if end:
                sending.close()
                return
            rest = memoryview(framed)[FIRST_PART:]
            while rest:
                rest = rest[os.write(fd, rest):]

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    return thread


def _on_uvloop(
    receive: Callable[[Connection, Connection], Awaitable[Any]], message: bytes = MESSAGE, *, end: bool = False
) -> Any:
    """What ``receive`` returns, on uvloop, given a fresh pipe (its two
    ends) to which ``message`` is written in two parts once the reader has
    started waiting."""
    receiving, sending = multiprocessing.Pipe(duplex=False)

    async def main() -> Any:
        reading = asyncio.ensure_future(receive(receiving, sending))
        await asyncio.sleep(0)  # it found nothing to read: it waits for the pipe to be readable
        writer = _write_in_two_parts(receiving, sending, message, end=end)
        try:
            return await asyncio.wait_for(reading, 30)
        finally:
            receiving.close()  # a writer the reader left does not wait on a full pipe for ever
            writer.join()

    try:
        return uvloop.run(main())
    finally:
        receiving.close()
        sending.close()


def test_a_message_arriving_in_parts_after_the_wait_is_received_whole() -> None:
    assert _on_uvloop(lambda pipe, _: share_pipes.receive(pipe, "hints")) == MESSAGE


def test_a_message_read_without_waiting_after_a_wait_is_received_whole() -> None:
    """The hints already come are read without waiting (poll, then
    recv_bytes: read_shares._read_all's hear_arrived), on a pipe the loop
    waited on for an earlier (small) message."""

    async def after_a_wait(pipe: Connection, sending: Connection) -> bytes:
        assert await share_pipes.receive(pipe, "hints") == b"h"
        writer = _write_in_two_parts(pipe, sending, MESSAGE)
        while not pipe.poll():
            await asyncio.sleep(0.001)
        try:
            return share_pipes.received(pipe.recv_bytes, "hints")
        finally:
            pipe.close()
            writer.join()

    assert _on_uvloop(after_a_wait, b"h") == MESSAGE


def test_a_writer_ending_in_the_middle_of_a_message_fails_the_replay() -> None:
    with pytest.raises(ReplayWorkerFailed, match="ended while sending hints"):
        _on_uvloop(lambda pipe, _: share_pipes.receive(pipe, "hints"), end=True)


def test_a_read_worker_s_message_arriving_in_parts_after_the_wait_is_collected_whole() -> None:
    """parallel_replay: the replay waits for any of its read workers'
    pipes to be readable, then collects what they sent."""

    async def collect(pipe: Connection, _: Connection) -> Any:
        reader = parallel_replay._ChunkReader(None, pipe)  # type: ignore[arg-type]
        done: dict[int, Any] = {}
        await parallel_replay._any_readable([reader])
        reader.collect(done)
        return done

    assert _on_uvloop(collect, b"m" + struct.pack("<q", 7) + MESSAGE) == {7: MESSAGE}


class _Killed:
    exitcode = -9

    def join(self) -> None:
        pass


def test_a_read_worker_ending_in_the_middle_of_a_message_fails_the_replay() -> None:
    async def collect(pipe: Connection, _: Connection) -> Any:
        reader = parallel_replay._ChunkReader(_Killed(), pipe)  # type: ignore[arg-type]
        await parallel_replay._any_readable([reader])
        reader.collect({})

    with pytest.raises(ReplayWorkerFailed, match="exit code -9"):
        _on_uvloop(collect, b"m" + struct.pack("<q", 7) + MESSAGE, end=True)
