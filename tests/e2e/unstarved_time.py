"""A command's wall time less the time the machine kept it off the CPUs, to
judge a "exits within N seconds" promise by (tests/README.md "Tests that hold
on a loaded machine").

``lrs relay`` that cannot reach its database takes about 1.4 s of CPU and
exits; on a 2-core machine at load 20 the same run took 44-50 s of wall time,
nearly all of it waiting for a CPU.  Linux counts that wait for every task
(``/proc/<pid>/schedstat``: time on a CPU, time runnable but waiting for one,
in ns), so the time the command itself spent -- running, or waiting for
something it asked for: a sleep, a retry interval, a connection, a disk read
-- is its wall time less that wait.  A command that hangs (sleeps 15 s, retries
the database for 30 s) spends that time asleep, not runnable, and still
exceeds the budget however idle or loaded the machine.

The wait read is the main thread's (the one that sleeps or retries in an
event loop): a helper thread's wait is not subtracted, so the figure errs
towards too long, never too short.  The process is left unreaped until its
figures are read (``waitid(WNOWAIT)``), so they are exact, not sampled.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Exited", "cpu_wait_s", "run_to_exit"]

POLL_S = 0.05
STARVED_BOUND_S = 300.0  # a machine so loaded that the command is still waiting after this long: fail, say so


@dataclass(frozen=True)
class Exited:
    returncode: int
    output: bytes
    wall_s: float
    waited_for_cpu_s: float

    @property
    def unstarved_s(self) -> float:
        """Wall time the command was running or waiting for what it asked for."""
        return self.wall_s - self.waited_for_cpu_s


def cpu_wait_s(schedstat: str | Path) -> float:
    """Seconds the task of ``schedstat`` (``/proc/<pid>/schedstat``: the
    main thread; ``/proc/<pid>/task/<tid>/schedstat``: a thread) has been
    runnable but waiting for a CPU."""
    with open(schedstat) as stat:
        return int(stat.read().split()[1]) / 1e9


async def run_to_exit(argv: list[str], env: dict[str, str], budget_s: float, *, stderr_only: bool = False,
                      terminate_after: bytes | None = None) -> Exited:
    """Run ``argv`` to its exit, its stdout and stderr together (stderr alone
    with ``stderr_only``); fail as soon as its unstarved time passes
    ``budget_s``, killing it and its session.  With ``terminate_after``, it
    is sent SIGTERM once its output holds those bytes (a service's stop)."""
    with tempfile.TemporaryFile() as out:
        process = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL,
                                   stdout=subprocess.DEVNULL if stderr_only else out, stderr=out,
                                   start_new_session=True)
        started = time.monotonic()
        try:
            while os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
                wall = time.monotonic() - started
                waited = cpu_wait_s(f"/proc/{process.pid}/schedstat")
                assert wall - waited <= budget_s, (
                    f"{' '.join(argv[2:])} still running after {wall - waited:.1f} s not waiting for a CPU "
                    f"({wall:.1f} s of wall time, {waited:.1f} s of it waiting for a CPU)")
                assert wall <= STARVED_BOUND_S, (
                    f"{' '.join(argv[2:])} still running after {wall:.0f} s of wall time, {waited:.1f} s of it waiting "
                    "for a CPU: the machine is too loaded to judge it")
                if terminate_after is not None and terminate_after in os.pread(out.fileno(), 1 << 20, 0):
                    process.send_signal(signal.SIGTERM)
                    terminate_after = None
                await asyncio.sleep(POLL_S)
            wall = time.monotonic() - started  # late by at most POLL_S: errs towards too long
            waited = cpu_wait_s(f"/proc/{process.pid}/schedstat")  # a zombie keeps its figures until reaped
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        out.seek(0)
        return Exited(process.returncode, out.read(), wall, waited)
