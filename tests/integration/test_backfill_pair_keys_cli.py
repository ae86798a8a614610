"""``lrs backfill-pair-keys`` on a database it cannot work on says so in one line."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path


async def lrs(env: dict[str, str], *args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "lrs", *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode()


async def test_a_database_never_migrated_gets_one_line_not_a_traceback(database_url: str, tmp_path: Path) -> None:
    env = {**os.environ, "LRS_DATABASE_URL": database_url, "LRS_DATA_DIR": str(tmp_path), "LRS_LOG_LEVEL": "warning"}
    status, out = await lrs(env, "backfill-pair-keys", "--no-progress")
    assert status == 2, out
    assert "Traceback" not in out
    [line] = out.strip().splitlines()
    assert line.startswith("lrs backfill-pair-keys: configuration error: LRS_DATABASE_URL: the database "), line
    assert line.endswith(" is not migrated, it holds no event log (check that it names the LRS's database; "
                         "`lrs migrate` or `lrs serve` makes the log in a new one)"), line
