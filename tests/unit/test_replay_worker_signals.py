"""A replay's forked workers end with the replay, even when it is SIGKILLed."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest

from projections.competency.parallel_replay import worker_signals

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")  # a zombie has ended; only its exit status is left


def _gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not _running(pid):
            return True
        time.sleep(0.02)
    return False


def _replay_and_worker(worker_parent: int | None = None) -> tuple[int, int]:
    """Fork a stand-in replay that forks a stand-in worker; return both pids.
    The worker calls worker_signals with ``worker_parent`` (default: its
    real parent) and then waits; both only sleep, so forking here is safe."""
    read, write = os.pipe()
    replay = os.fork()
    if replay == 0:  # the replay
        os.close(read)
        worker = os.fork()
        if worker == 0:  # its worker
            worker_signals(worker_parent if worker_parent is not None else os.getppid())
            # One write names the worker and says it is ready: had the replay
            # written the pid itself, a busy machine could order the two
            # writes the other way round.
            os.write(write, b"%d ready" % os.getpid())
            time.sleep(60)
            os._exit(0)
        os.close(write)
        time.sleep(60)
        os._exit(0)
    os.close(write)
    data = b""
    while not data.endswith(b"ready"):
        chunk = os.read(read, 64)
        if not chunk:
            break
        data += chunk
    os.close(read)
    return replay, int(data.split()[0])


def test_a_worker_dies_with_its_killed_replay() -> None:
    replay, worker = _replay_and_worker()
    try:
        assert _running(worker)
        assert not _gone_within(worker, 0.3)  # it waits while the replay lives
        os.kill(replay, signal.SIGKILL)
        os.waitpid(replay, 0)
        assert _gone_within(worker, 5.0)
    finally:
        for pid in (worker, replay):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            os.waitpid(replay, os.WNOHANG)
        except ChildProcessError:
            pass


def test_a_worker_whose_replay_is_already_gone_ends_at_once() -> None:
    # The replay can die between the fork and the worker's call; the worker
    # then has another parent already, and must not go on.
    read, write = os.pipe()
    worker = os.fork()
    if worker == 0:
        worker_signals(os.getppid() + 1_000_000)  # a parent that is not ours
        os.write(write, b"alive")
        os._exit(0)
    os.close(write)
    said = os.read(read, 16)
    os.close(read)
    _, status = os.waitpid(worker, 0)
    assert said == b"" and os.waitstatus_to_exitcode(status) == 1
