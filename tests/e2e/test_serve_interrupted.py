"""Ctrl-C on ``lrs serve`` with several workers, while they start and once
they serve: the supervisor alone acts on it and stops its children (HTTP
workers, relay) in order; none of them prints a line or a traceback of its
own, and nothing of the process group is left.

The service is held at a known point before the signal: the test holds the
migrations' lock, and signals once a child waits for it in PostgreSQL.  As a
terminal does on Ctrl-C, SIGINT goes to the whole process group."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from typing import Any

import asyncpg
import pytest

from lrs.store.migrations import MIGRATION_LOCK_KEY
from tests.ctrl_c import as_from_a_terminal

WAITING_FOR_MIGRATIONS = "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'advisory' AND query LIKE '%advisory_lock%'"


def children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as listed:
            return [int(child) for child in listed.read().split()]
    except OSError:
        return []


def ignores_ctrl_c(pid: int) -> bool:
    """SIGINT (signal 2) in the process's ignored set (/proc/PID/status SigIgn)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("SigIgn:"):
                    return bool(int(line.split()[1], 16) & (1 << (signal.SIGINT - 1)))
    except OSError:
        pass
    return False


async def test_ctrl_c_is_the_supervisors_alone(
    service_factory: Any, nats_url: str, database_url: str
) -> None:
    service = service_factory(nats_url, LRS_HTTP_WORKERS="2")
    env = service.env
    lock = await asyncpg.connect(database_url)
    try:
        await lock.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "lrs", "serve", env=env, start_new_session=True, preexec_fn=as_from_a_terminal,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            for _ in range(1200):
                if await lock.fetchval(WAITING_FOR_MIGRATIONS):
                    break
                await asyncio.sleep(0.05)
            else:
                pytest.fail("no child of lrs serve waited for the migrations' lock")
            # and every child has begun to leave Ctrl-C to the supervisor (its
            # first statement; before it, a child is still in Python's start-up)
            for _ in range(1200):
                started = children(process.pid)
                if len(started) >= 3 and all(ignores_ctrl_c(child) for child in started):
                    break
                await asyncio.sleep(0.05)
            else:
                pytest.fail(f"the children of lrs serve did not all ignore SIGINT: {children(process.pid)}")
            os.killpg(process.pid, signal.SIGINT)  # Ctrl-C in a terminal: the whole process group
            out, err = await asyncio.wait_for(process.communicate(), 60)
        finally:
            if process.returncode is None:
                os.killpg(process.pid, signal.SIGKILL)
                await process.wait()
    finally:
        await lock.close()
    assert (process.returncode, err.decode()) == (0, ""), out.decode()[-3000:]
    assert b"Traceback" not in out and b"interrupted" not in out
    with pytest.raises(ProcessLookupError):  # nothing of its process group is left
        os.killpg(process.pid, 0)

    # Once it serves: stopped as SIGTERM stops it.
    await service.start()
    os.killpg(service.process.pid, signal.SIGINT)
    assert await asyncio.wait_for(service.process.wait(), 60) == 0
    logged = service.log_path.read_text()
    assert "Traceback" not in logged and "interrupted" not in logged, logged[-3000:]
    with pytest.raises(ProcessLookupError):
        os.killpg(service.process.pid, 0)
