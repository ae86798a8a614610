"""``lrs replay competency --compare`` interrupted (SIGINT) while it
rebuilds: it leaves no scratch schema and the live projection as it was."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import asyncpg

from lrs.store import StatementWriter
from projections.competency.catalog import FRAMEWORKS_DIR
from tests.integration.test_replay_chain import SCRATCH, audited_log
from tests.integration.test_replay_shares import assert_nothing_swapped_in


async def test_an_interrupted_compare_leaves_no_scratch_schema(
    pool: asyncpg.Pool, writer: StatementWriter, database_url: str
) -> None:
    runner, live, checkpoint, before = await audited_log(pool, writer)
    env = {**os.environ, "LRS_DATABASE_URL": database_url, "LRS_LOG_LEVEL": "warning"}
    for processes in ("1", "2"):
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "lrs", "replay", "competency", "--compare", "--processes", processes,
            "--batch-size", "1", "--frameworks", str(FRAMEWORKS_DIR), env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        for _ in range(400):
            if await pool.fetchval(SCRATCH):
                break
            await asyncio.sleep(0.05)
        assert await pool.fetchval(SCRATCH) == 1, "the compare never started rebuilding"
        process.send_signal(signal.SIGINT)
        await asyncio.wait_for(process.communicate(), 60)
        assert await pool.fetchval(SCRATCH) == 0
    await assert_nothing_swapped_in(pool, runner, live, checkpoint, before)
