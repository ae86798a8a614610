"""A replay's swap and ``--compare`` beside a learner erasure, against real
PostgreSQL: ingest never waits behind them (docs/privacy.md "Erasure and a
replay").

An erasure takes the log head lock (which every Statement insert needs)
and then reads ``identity_links``, a table the competency projection's
replay rebuilds.  A replay that held the live tables' exclusive locks
while it finished and digested its state made such an erasure wait for it,
and every Statement after it.  The interleaving is made, not hoped for: the
erasure is held just after it took the head lock; the replay (or the
comparison) is held where it spends its time on a large log (finishing
and digesting the rebuilt state); then the erasure goes on and a Statement
is appended.  The append must not wait for the held replay."""

from __future__ import annotations

import asyncio
import os
import threading
from typing import Any, Awaitable, Callable

import asyncpg
import pytest

import lrs.store.erasure as erasure_module
from projections import swap_lock
from lrs.privacy.master import MasterKey
from lrs.store import StatementWriter
from lrs.store.erasure import Erasure, erase_learner
from lrs.store.learner_keys import LearnerKeys
from projections.competency.catalog import FRAMEWORKS_DIR
from projections.competency.store import CompetencyProjection
from projections.replay import replay
from projections.replay_compare import compare
from projections.runner import ProjectionRunner
from tests.integration.competency_statements import CATALOG, PASSED, course_statement, write
from tests.integration.test_keys_in_group_commit import TENANT, append_sealed, naming, seal_made
from tests.integration.test_replay_chain import audited_log, audited_log_in
from tests.integration.test_replay_shares import assert_nothing_swapped_in
from tests.integration.test_roster_lock_order import until_done_or_waiting

MBOX = "mailto:thu@example.com"
HELD_S = 5.0  # how long the replay stays held: what finishing and digesting a large log takes
BOUND_S = 1.0  # how long an append may wait meanwhile
# The swap asking for the live tables' locks (DROP TABLE, or LOCK TABLE first), and waiting.
SWAP_WAITING = """
SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'
  AND (query LIKE 'DROP TABLE public.%' OR query LIKE 'LOCK TABLE public.%')
"""


class Gate:
    """Holds the first call it wraps until opened."""

    def __init__(self) -> None:
        self.reached = asyncio.Event()
        self.opened = asyncio.Event()

    async def pass_(self) -> None:
        if not self.reached.is_set():
            self.reached.set()
            await self.opened.wait()


class Held(CompetencyProjection):
    """The competency projection, held in the replay's finishing
    (``finish_rebuild``) or in the comparison's digest of the rebuilt state
    (its second digest) until ``gate`` opens."""

    def __init__(self, gate: Gate, where: str) -> None:
        super().__init__(CATALOG, replay_processes=1)
        self.gate, self.where, self.digests = gate, where, 0

    async def finish_rebuild(self, conn: asyncpg.Connection) -> None:
        await super().finish_rebuild(conn)
        if self.where == "finish_rebuild":
            await self.gate.pass_()

    async def digest(self, conn: asyncpg.Connection | asyncpg.Pool) -> str:
        found = await super().digest(conn)
        self.digests += 1
        if self.where == "digest" and self.digests == 2:
            await self.gate.pass_()
        return found


async def equal_at_the_log_head(pool: asyncpg.Pool, runner: ProjectionRunner) -> None:
    """Once the live runner applied the rest, the live projection is what the whole log gives."""
    await runner.catch_up()
    found = await compare(pool, CompetencyProjection(CATALOG, replay_processes=1))
    assert found.equal and found.position == await pool.fetchval("SELECT position FROM log_head")


async def erasure_beside(
    pool: asyncpg.Pool, writer: StatementWriter, monkeypatch: pytest.MonkeyPatch,
    rebuilding: Callable[[Held], Awaitable[Any]], where: str,
) -> tuple[float, bool, Erasure, Any]:
    """The interleaving above; how long the append waited, whether the
    erasure was done before the replay went on, the erasure, and what
    ``rebuilding`` returned."""
    master = MasterKey(os.urandom(32))
    keyring = LearnerKeys(pool, master)
    await append_sealed(writer, keyring, await seal_made(keyring, [naming(MBOX)]))
    await ProjectionRunner(pool, CompetencyProjection(CATALOG)).catch_up()
    erasure_gate, replay_gate = Gate(), Gate()
    names_in_clear = erasure_module.names_in_clear

    async def held_names_in_clear(*args: Any) -> bool:
        await erasure_gate.pass_()  # the erasure holds the log head lock here
        return await names_in_clear(*args)

    monkeypatch.setattr(erasure_module, "names_in_clear", held_names_in_clear)
    erasing = asyncio.create_task(erase_learner(
        pool, LearnerKeys(pool, master), TENANT, {"mbox": MBOX}, reason="request 51", by="test"))
    await asyncio.wait_for(erasure_gate.reached.wait(), 10)
    rebuilt = asyncio.create_task(rebuilding(Held(replay_gate, where)))
    try:
        await asyncio.wait_for(replay_gate.reached.wait(), 60)
        erasure_gate.opened.set()
        await until_done_or_waiting(erasing, pool)
        loop = asyncio.get_running_loop()
        started = loop.time()
        appended = asyncio.create_task(write(writer, course_statement(3, "data-basics", PASSED, 4000)))
        await asyncio.wait({appended}, timeout=HELD_S)
        waited = loop.time() - started
        erased_while_held = erasing.done()
    finally:
        erasure_gate.opened.set()
        replay_gate.opened.set()
    result = await asyncio.wait_for(rebuilt, 60)
    await asyncio.wait_for(appended, 10)
    return waited, erased_while_held, await erasing, result


@pytest.mark.parametrize("kind", ["compare", "replay"])
async def test_a_compare_or_a_replay_beside_an_erasure_never_holds_an_append_back(
    kind: str, pool: asyncpg.Pool, writer: StatementWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner, *_ = await audited_log(pool, writer)
    if kind == "compare":  # held in its digest of the rebuilt state
        waited, erased_while_held, erased, found = await erasure_beside(
            pool, writer, monkeypatch, lambda projection: compare(pool, projection), "digest")
    else:  # held finishing the rebuilt tables
        waited, erased_while_held, erased, found = await erasure_beside(
            pool, writer, monkeypatch, lambda projection: replay(pool, projection), "finish_rebuild")
    # before the fix: the append waited for the whole hold (5 s)
    assert waited < BOUND_S, f"a Statement append waited {waited:.2f} s behind the erasure behind the {kind}"
    assert erased_while_held and erased.generations == [1]
    if kind == "compare":
        assert found.equal
    else:  # swapped in up to where it caught up; the live runner applies the rest
        assert await pool.fetchval("SELECT position FROM projection_checkpoints WHERE name = 'competency'") == found
    # the erasure and the append, applied live, are what the log gives
    await equal_at_the_log_head(pool, runner)


async def test_a_swap_that_waits_for_a_reader_never_holds_an_erasure_and_an_append_behind_it(
    pool: asyncpg.Pool, writer: StatementWriter
) -> None:
    """A reader of a live table (a long report, say) holds the swap's
    exclusive lock back; the erasure, then the append, must not queue
    behind that waiting request for as long as the reader reads."""
    runner, *_ = await audited_log(pool, writer)
    master = MasterKey(os.urandom(32))
    keyring = LearnerKeys(pool, master)
    await append_sealed(writer, keyring, await seal_made(keyring, [naming(MBOX)]))
    await runner.catch_up()
    loop = asyncio.get_running_loop()
    async with pool.acquire() as reader:
        await reader.execute("BEGIN")
        try:
            await reader.fetchval("SELECT count(*) FROM identity_links")
            replaying = asyncio.create_task(replay(pool, CompetencyProjection(CATALOG, replay_processes=1)))
            for _ in range(6000):  # until the swap asks for the live tables' locks
                if await pool.fetchval(SWAP_WAITING) or replaying.done():
                    break
                await asyncio.sleep(0.01)
            assert not replaying.done() and await pool.fetchval(SWAP_WAITING)
            started = loop.time()
            erasing = asyncio.create_task(erase_learner(
                pool, LearnerKeys(pool, master), TENANT, {"mbox": MBOX}, reason="request 52", by="test"))
            appended = asyncio.create_task(write(writer, course_statement(4, "data-basics", PASSED, 4100)))
            await asyncio.wait({erasing, appended}, timeout=HELD_S, return_when=asyncio.ALL_COMPLETED)
            waited = loop.time() - started
        finally:
            await reader.execute("ROLLBACK")
    position = await asyncio.wait_for(replaying, 60)
    await asyncio.wait_for(asyncio.gather(erasing, appended), 10)
    # before the fix: both waited until the reader let go (5 s)
    assert waited < BOUND_S, f"the erasure and an append waited {waited:.2f} s behind the swap's lock request"
    assert (await erasing).generations == [1]
    assert await pool.fetchval("SELECT position FROM projection_checkpoints WHERE name = 'competency'") >= position
    await equal_at_the_log_head(pool, runner)


async def test_a_swap_whose_tables_stay_locked_gives_up_and_swaps_nothing_in(
    pool: asyncpg.Pool, writer: StatementWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner, live, checkpoint, before = await audited_log(pool, writer)
    monkeypatch.setattr(swap_lock, "GIVE_UP_AFTER_S", 1.0)
    async with pool.acquire() as reader:
        await reader.execute("BEGIN")
        try:
            await reader.fetchval("SELECT count(*) FROM roster_memberships")
            with pytest.raises(swap_lock.LiveTablesBusy, match="nothing was swapped in"):
                await asyncio.wait_for(replay(pool, CompetencyProjection(CATALOG, replay_processes=1)), 60)
        finally:
            await reader.execute("ROLLBACK")
    await assert_nothing_swapped_in(pool, runner, live, checkpoint, before)
    assert await pool.fetchval("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'replay_competency%'") == 0


def test_lrs_replay_whose_tables_stay_locked_exits_1_with_one_line(
    database_url: str, pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from lrs.cli import main

    asyncio.run(audited_log_in(database_url))
    holding, release = threading.Event(), threading.Event()

    def hold_a_reader() -> None:
        async def held() -> None:
            reader = await asyncpg.connect(database_url)
            await reader.execute("BEGIN")
            await reader.fetchval("SELECT count(*) FROM identity_links")
            holding.set()
            await asyncio.to_thread(release.wait)
            await reader.close()

        asyncio.run(held())

    thread = threading.Thread(target=hold_a_reader)
    thread.start()
    try:
        assert holding.wait(30)
        monkeypatch.setattr(swap_lock, "GIVE_UP_AFTER_S", 1.0)
        monkeypatch.setenv("LRS_DATABASE_URL", database_url)
        monkeypatch.setattr("lrs.commands.common.setup", lambda settings, **options: None)
        code = main(["replay", "competency", "--processes", "1", "--frameworks", str(FRAMEWORKS_DIR)])
    finally:
        release.set()
        thread.join(30)
    err = capsys.readouterr().err.strip()
    assert code == 1
    assert err.splitlines()[-1].startswith("lrs replay competency: the live tables stayed locked by others for 1 s")
    assert err.splitlines()[-1].endswith("nothing was swapped in")
