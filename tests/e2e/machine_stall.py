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
step each took beyond its own, as a stretch of time, and the two stretches
together counted once (one is the client's side of the path, the other the
server's: apart, both stretch a gap; a stall of the whole machine stalls both
at once, and counts once).  A reference process that exited before the
scenario ended (its PostgreSQL session ended, as a failover that disturbs
PostgreSQL might end it) measured nothing after: asking fails, rather than
allowing every window after its last commit whole.

:func:`within_budget` judges a duration by ``budget`` plus that stall, the
stall allowed at most ``budget`` itself: the reference commits to the same
PostgreSQL as the service, so a failover made slow by PostgreSQL (a WAL
flush held up by what the takeover writes, a server kept busy by it) stalls
the reference too, and its allowance would grow with the defect.  On a quiet
machine the references lose milliseconds, so a failover slow by itself -- a
sleep, a timeout, a retry interval -- still fails, and one beyond twice the
budget fails whatever the references lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from bisect import bisect_right
from pathlib import Path

__all__ = ["MachineStall", "REFERENCE_STEP_S", "lost_within", "stalled_within", "within_budget"]

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


def stalled_within(moments: list[float], step: float, start: float, end: float) -> tuple[float, float]:
    """The longest time, within ``[start, end]``, between two consecutive
    ``moments`` (sorted) beyond ``step``, the quiet machine's, as a stretch
    (from, to) of that length ending where the step did (from == to: none);
    a window past the last moment counts up to ``end`` (the reference had
    not come back: :class:`MachineStall` checks it was still running)."""
    if not moments:
        return (start, end)
    first = max(bisect_right(moments, start) - 1, 0)
    longest = (start, start)
    for before, after in zip(moments[first:], moments[first + 1:] + [max(end, moments[-1])]):
        if before >= end:
            break
        overlap = min(after, end) - max(before, start)
        if overlap - step > longest[1] - longest[0]:
            longest = (min(after, end) - (overlap - step), min(after, end))
    return longest


def lost_within(moments: list[float], step: float, start: float, end: float) -> float:
    """The length of :func:`stalled_within`."""
    stalled_from, stalled_to = stalled_within(moments, step, start, end)
    return stalled_to - stalled_from


def within_budget(duration: float, budget: float, stall: float) -> bool:
    """Whether ``duration`` (a wall time) is within ``budget`` plus the
    machine's ``stall`` in the same window (:meth:`MachineStall.within`),
    the stall allowed at most ``budget``: the references share PostgreSQL
    with the service, so a failover slowed by PostgreSQL grows their stall
    with it (the module's docstring)."""
    return duration <= budget + min(stall, budget)


class MachineStall:
    """Runs the two references while entered (``async with``); ``within``
    answers for any window inside that time."""

    def __init__(self, database_url: str, directory: Path) -> None:
        self._url = database_url
        self._path = directory / "reference-commits.txt"
        self._process: asyncio.subprocess.Process | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._ticks: list[float] = []
        self._ended = False
        self._exited_early: int | None = None  # the reference's exit code, had it exited before the scenario ended

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
        self._ended = True
        if self._process is not None:
            self._exited_early = self._process.returncode
            if self._process.returncode is None:
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
        (``time.monotonic()``, the same clock in every process): the union of
        each one's longest stall there (a stall of both at once counts once)."""
        exited = self._exited_early if self._ended else None if self._process is None else self._process.returncode
        assert exited is None, (
            f"the reference process exited ({exited}) before the scenario ended: it measured nothing after "
            f"its last commit, and would allow any failover there")
        stretches = sorted([stalled_within(self._reference(), REFERENCE_STEP_S, start, end),
                            stalled_within(self._ticks, TICK_S, start, end)])
        (first_from, first_to), (second_from, second_to) = stretches
        return (first_to - first_from) + (second_to - second_from) - max(0.0, min(first_to, second_to) - second_from)
