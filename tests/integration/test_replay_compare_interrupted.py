"""``lrs replay competency --compare`` interrupted by Ctrl-C while it
rebuilds: one line ``lrs replay: interrupted`` on stderr, exit status 130,
no traceback (from it or from its forked share), no scratch schema, no
process or database session of it left, the live projection as it was.

The command is held at a known point before the signal: once its scratch
tables exist, the test locks those of the learners, and signals when every
process of the replay (this one and, with two processes, its forked share,
which a log of at least read_shares.MIN_SHARED_EVENTS events brings) has
read the log and waits for that lock to write what it folded.  As a
terminal does on Ctrl-C, SIGINT goes to the whole process group.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
import uuid

import asyncpg
import pytest

from lrs.ingest.prepare import prepare_statements
from lrs.store import StatementWriter
from projections.competency.catalog import FRAMEWORKS_DIR
from projections.competency.read_shares import MIN_SHARED_EVENTS
from projections.competency.store import digest
from tests.integration.competency_statements import AUTHORITY, PASSED, course_statement
from tests.integration.test_replay_chain import SCRATCH
from tests.integration.test_replay_shares import tables
from tests.ctrl_c import as_from_a_terminal

REPLAY_SESSIONS = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'lrs-replay'"
# The scratch tables of the learners' rows, which a replay writes once it has read the log.
LEARNER_TABLES = ", ".join(f"replay_competency.{table}" for table in (
    "competency_learners", "competency_states", "competency_certifications", "competency_statement_learners",
    "competency_voids", "competency_mastery_mismatches", "unit_certified"))
WAITING_TO_WRITE = (
    "SELECT count(DISTINCT a.pid) FROM pg_stat_activity a JOIN pg_locks l ON l.pid = a.pid JOIN pg_class c"
    " ON c.oid = l.relation WHERE a.application_name = 'lrs-replay' AND NOT l.granted"
    " AND c.relnamespace = 'replay_competency'::regnamespace"
)


async def long_log(writer: StatementWriter) -> None:
    """More events than a replay reads alone: with two processes, it forks a share."""
    rng = random.Random(11)
    for _ in range(MIN_SHARED_EVENTS // 1000 + 1):
        bodies = [course_statement(rng.randrange(300), "device-security", PASSED, rng.randrange(40_000))
                  for _ in range(1000)]
        await writer.append("default", prepare_statements(bodies, version="1.0.3", authority=AUTHORITY, new_id=uuid.uuid4))


async def eventually(pool: asyncpg.Pool, query: str, expected: int, what: str, seconds: float = 20) -> None:
    for _ in range(int(seconds / 0.05)):
        if await pool.fetchval(query) == expected:
            return
        await asyncio.sleep(0.05)
    sessions = await pool.fetch(
        "SELECT a.application_name, a.wait_event_type, a.wait_event, left(a.query, 120) AS query FROM pg_stat_activity a"
        " WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()")
    pytest.fail(f"{what}: {await pool.fetchval(query)} after {seconds} s, not {expected}; sessions: {sessions}")


def children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as listed:
        return [int(child) for child in listed.read().split()]


async def test_ctrl_c_during_a_compare_says_interrupted_and_leaves_nothing_behind(
    pool: asyncpg.Pool, writer: StatementWriter, database_url: str
) -> None:
    await long_log(writer)
    live, before = await digest(pool), await tables(pool)
    env = {**os.environ, "LRS_DATABASE_URL": database_url, "LRS_LOG_LEVEL": "warning"}
    for processes in (1, 2):
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "lrs", "replay", "competency", "--compare", "--processes", str(processes),
            "--frameworks", str(FRAMEWORKS_DIR), env=env, start_new_session=True, preexec_fn=as_from_a_terminal,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        lock = await asyncpg.connect(database_url)
        try:
            try:
                await eventually(pool, SCRATCH, 1, "scratch schemas")
                await lock.execute(f"BEGIN; LOCK TABLE {LEARNER_TABLES} IN ACCESS EXCLUSIVE MODE")
                await eventually(pool, WAITING_TO_WRITE, processes, "sessions of the replay waiting to write", seconds=120)
                assert len(children(process.pid)) == processes - 1  # its forked share, alive
                os.killpg(process.pid, signal.SIGINT)  # Ctrl-C in a terminal: the whole process group
            finally:
                await lock.close()
            out, err = await asyncio.wait_for(process.communicate(), 60)
        finally:
            if process.returncode is None:
                os.killpg(process.pid, signal.SIGKILL)
                await process.wait()
        assert (process.returncode, out.decode(), err.decode()) == (130, "", "lrs replay: interrupted\n"), processes
        with pytest.raises(ProcessLookupError):  # nothing of its process group is left
            os.killpg(process.pid, 0)
        await eventually(pool, REPLAY_SESSIONS, 0, "database sessions of the replay", seconds=10)
        assert await pool.fetchval(SCRATCH) == 0
    assert await digest(pool) == live and await tables(pool) == before
