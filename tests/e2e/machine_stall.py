"""The machine's own stall beside a scenario, to judge a wall-time budget by
(tests/README.md "Tests that hold on a loaded machine").

A service-level figure such as a failover's longest gap between successful
requests is a wall time: a machine loaded beyond the test's own work (other
suites, benchmarks, a disk busy flushing) stretches it though the product did
nothing slower.  So a scenario runs two references beside it, which do none
of the scenario's logic but share what stalls it:

* a reference process that commits to the same PostgreSQL every
  :data:`REFERENCE_STEP_S` (``SELECT txid_current()`` in its own
  transaction: a commit record, flushed as every Statement's is): a process
  kept off the CPUs, a WAL flush held up by a busy disk, a server that
  answers late, all stall it as they stall the service;
* a ticker in the load generator's own event loop: the moments the scenario
  records (a POST answered) are taken there, late by as much as that loop is.

:meth:`MachineStall.within` is the time they lost within a window: the longest
step each took beyond its own, added (one is the client's side of the path,
the other the server's).  A budget is then ``budget + within(window)``: as
tight as the budget on a quiet machine (a few milliseconds each), and a
failover that is slow by itself -- a sleep, a timeout, a retry interval --
stalls neither reference, so it still fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from bisect import bisect_right
from pathlib import Path

__all__ = ["MachineStall", "REFERENCE_STEP_S"]

REFERENCE_STEP_S = 0.02
TICK_S = 0.01

_REFERENCE = """
import asyncio, sys, time
import asyncpg

async def main(url, path, step):
    conn = await asyncpg.connect(url)
    with open(path, "a", buffering=1) as out:
        out.write(f"{time.monotonic()}\\n")
        while True:
            await conn.fetchval("SELECT txid_current()")  # its own transaction: a commit, flushed
            out.write(f"{time.monotonic()}\\n")
            await asyncio.sleep(step)

asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3])))
"""


def lost_within(moments: list[float], step: float, start: float, end: float) -> float:
    """The longest time, within ``[start, end]``, between two consecutive
    ``moments`` (sorted) beyond ``step``, the quiet machine's; a window past
    the last moment counts up to ``end`` (the reference had not come back)."""
    if not moments:
        return end - start
    first = max(bisect_right(moments, start) - 1, 0)
    longest = 0.0
    for before, after in zip(moments[first:], moments[first + 1:] + [max(end, moments[-1])]):
        if before >= end:
            break
        overlap = min(after, end) - max(before, start)
        longest = max(longest, overlap - step)
    return longest


class MachineStall:
    """Runs the two references while entered (``async with``); ``within``
    answers for any window inside that time."""

    def __init__(self, database_url: str, directory: Path) -> None:
        self._url = database_url
        self._path = directory / "reference-commits.txt"
        self._process: asyncio.subprocess.Process | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._ticks: list[float] = []

    async def __aenter__(self) -> "MachineStall":
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._path.write_text("")
        self._process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", _REFERENCE, self._url, str(self._path), str(REFERENCE_STEP_S),
        )
        self._ticker = asyncio.create_task(self._tick())
        deadline = time.monotonic() + 60
        while not self._reference():  # connected and committing (only a failing start waits long)
            assert self._process.returncode is None, f"the reference process exited with {self._process.returncode}"
            assert time.monotonic() < deadline, "the reference process did not commit within 60 s"
            await asyncio.sleep(0.05)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        if self._process is not None and self._process.returncode is None:
            self._process.kill()
            await self._process.wait()

    async def _tick(self) -> None:
        while True:
            self._ticks.append(time.monotonic())
            await asyncio.sleep(TICK_S)

    def _reference(self) -> list[float]:
        return [float(line) for line in self._path.read_text().split()]

    def within(self, start: float, end: float) -> float:
        """Seconds the machine stalled the references within ``[start, end]``
        (``time.monotonic()``, the same clock in every process)."""
        return (lost_within(self._reference(), REFERENCE_STEP_S, start, end)
                + lost_within(self._ticks, TICK_S, start, end))
