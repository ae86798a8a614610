"""A one-shot command answers with its own line; at the default log level
nothing follows it on stderr (its info lines, JSON, used to: `anchor.written`,
`projection.replayed`, the erasure's), while LRS_LOG_LEVEL still shows them."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import asyncpg

from lrs.privacy.master import load_or_create
from lrs.store import StatementWriter
from lrs.store.learner_keys import LearnerKeys
from tests.integration.test_keys_in_group_commit import TENANT, append_sealed, naming, seal_made

MBOX = "mailto:lan@example.com"


async def run(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "lrs", *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await process.communicate()
    return process.returncode or 0, out.decode(), err.decode()


async def test_one_shot_commands_print_their_line_alone_unless_the_log_level_is_asked_for(
    pool: asyncpg.Pool, writer: StatementWriter, database_url: str, tmp_path: Path
) -> None:
    keyring = LearnerKeys(pool, load_or_create(tmp_path / "privacy-key"))  # the key `lrs erase` opens
    await append_sealed(writer, keyring, await seal_made(keyring, [naming(MBOX)]))
    env = {key: value for key, value in os.environ.items() if key != "LRS_LOG_LEVEL"}
    env.update(LRS_DATABASE_URL=database_url, LRS_DATA_DIR=str(tmp_path))
    agent = json.dumps({"mbox": MBOX})
    commands = [
        (("audit", "anchor"), "anchored position 1 hash "),
        (("replay", "competency"), "replayed competency through position 1; digest "),
        (("erase", "learner", agent, "--tenant", TENANT, "--reason", "request 7"), "erased "),
    ]
    for argv, answer in commands:  # one after another: each changes what the next reads
        status, out, err = await run(env, *argv)
        assert status == 0, (argv, out, err)
        assert out.startswith(answer) and out.count("\n") == 1, (argv, out)
        assert err == "", (argv, err)

    # Asked for, the info lines are there, as JSON on stderr.
    status, out, err = await run({**env, "LRS_LOG_LEVEL": "info"}, "replay", "competency")
    assert status == 0 and out.startswith("replayed competency through position 2; digest "), (out, err)
    assert "projection.replayed" in [json.loads(line)["event"] for line in err.splitlines()], err


async def test_reading_commands_on_a_database_without_the_log_say_so_in_one_line(
    database_url: str, tmp_path: Path
) -> None:
    # database_url is empty here (no migrating fixture): an auditor pointed at the wrong database.
    env = {key: value for key, value in os.environ.items() if key != "LRS_LOG_LEVEL"}
    env.update(LRS_DATABASE_URL=database_url, LRS_DATA_DIR=str(tmp_path))
    for argv in (("audit", "anchor"), ("audit", "verify", "--no-record")):
        status, out, err = await run(env, *argv)
        assert status == 2, (argv, out, err)
        assert err.count("\n") == 1 and "Traceback" not in err, (argv, err)
        assert err.startswith(f"lrs {' '.join(argv[:2])}: configuration error: LRS_DATABASE_URL: the database "), err
        assert "is not migrated, it holds no event log" in err, (argv, err)
    conn = await asyncpg.connect(database_url)  # and nothing was made in it
    try:
        assert await conn.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == 0
    finally:
        await conn.close()
