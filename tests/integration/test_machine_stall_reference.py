"""The machine-stall references (tests/e2e/machine_stall.py) against a real
PostgreSQL: a reference process whose session ends (as a failover that
disturbs PostgreSQL might end it) exits, and measured nothing after its last
commit; counting every window after it as stalled whole allowed any failover
there, so asking it must fail instead."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import asyncpg
import pytest

from tests.e2e.machine_stall import MachineStall


async def test_a_reference_whose_session_ended_answers_for_no_window(database_url: str, tmp_path: Path) -> None:
    async with MachineStall(database_url, tmp_path) as stall:
        conn = await asyncpg.connect(database_url)
        try:
            ended = await conn.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE query LIKE '%txid_current%' AND pid <> pg_backend_pid()")
        finally:
            await conn.close()
        assert ended == 1
        for _ in range(600):  # until the reference has exited (only a failing test waits long)
            if stall._process is not None and stall._process.returncode is not None:
                break
            await asyncio.sleep(0.05)
        window_from = time.monotonic()
        await asyncio.sleep(0.3)
        window_to = time.monotonic()
    with pytest.raises(AssertionError, match="exited"):
        stall.within(window_from, window_to)


async def test_a_reference_that_ran_throughout_answers_for_the_last_moments_of_the_scenario(
    database_url: str, tmp_path: Path
) -> None:
    """A window that ends within the reference's last step (a POST answered
    just before the scenario ended) is measured: the reference ran until the end."""
    async with MachineStall(database_url, tmp_path) as stall:
        await asyncio.sleep(0.3)
        window_from = time.monotonic() - 0.2
        window_to = time.monotonic()
    assert 0.0 <= stall.within(window_from, window_to) < 0.2
