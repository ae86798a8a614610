"""``run_to_exit`` (tests/e2e/unstarved_time.py): a command that sleeps past
the budget fails however idle the machine; one kept off the CPUs does not."""

from __future__ import annotations

import os
import sys
import time

import pytest

from tests.e2e.unstarved_time import run_to_exit

ENV = dict(os.environ)


async def test_a_command_that_sleeps_past_the_budget_fails_at_the_budget() -> None:
    sleeper = [sys.executable, "-c", "import time, sys; time.sleep(15); sys.exit(1)"]
    started = time.monotonic()
    with pytest.raises(AssertionError, match="still running after 1.[0-9] s not waiting for a CPU"):
        await run_to_exit(sleeper, ENV, budget_s=1.0)
    assert time.monotonic() - started < 14, "killed at the budget, not left to finish its sleep"


async def test_a_command_kept_waiting_for_a_cpu_is_judged_without_that_wait() -> None:
    # One CPU for it and two busy siblings (same policy and nice): its 0.5 s of CPU take
    # 1.5 s of wall time or more, two thirds of it waiting for the CPU, which is not
    # counted against its 1 s budget.
    script = ("import os, sys, time\n"
              "os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})\n"
              "siblings = [os.fork() for _ in range(2)]\n"
              "if 0 in siblings:\n"
              "    end = time.monotonic() + 3\n"
              "    while time.monotonic() < end: pass\n"
              "    os._exit(0)\n"
              "end = time.process_time() + 0.5\n"
              "while time.process_time() < end: pass\n"
              "sys.stdout.write('done')\n")
    exited = await run_to_exit([sys.executable, "-c", script], ENV, budget_s=1.0)
    assert (exited.returncode, exited.output) == (0, b"done")
    assert exited.wall_s > 1.0 and exited.waited_for_cpu_s > 0.5, exited  # judged by wall time, it would fail
