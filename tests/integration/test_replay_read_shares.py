"""A replay in which every process reads the whole log from PostgreSQL and
keeps its share of the learners (projections/competency/read_shares.py),
against real PostgreSQL: the same tables, parked events and digest as a
replay in one process, and a share worker that fails or dies fails the
replay without swapping anything in."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import random
import time
from datetime import datetime, timezone
from typing import Any

import asyncpg
import pytest

from lrs.store import StatementWriter
from lrs.store.identities import change_links
from lrs.store.pool import connect
from projections.competency import read_shares
from projections.competency.parallel_replay import ReplayWorkerFailed
from projections.competency.store import CompetencyProjection, digest
from projections.log_chain import ChainBroken
from projections.replay import LogPages, replay
from projections.runner import ProjectionRunner
from tests.integration.competency_statements import CATALOG, FAILED, MODULES, PASSED, course_statement, voiding, write
from tests.integration.test_replay_read_chunks import parked
from tests.integration.test_replay_shares import (
    assert_nothing_swapped_in, failing_in_forked_workers, filled_and_caught_up, projected, tables,
)


@pytest.fixture(autouse=True)
def shares_for_any_log(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(read_shares, "MIN_SHARED_EVENTS", 1)


_init = LogPages.__init__


def small_pages(self: LogPages, *args: Any, **kwargs: Any) -> None:
    """Pages of 7 events: every process judges some of them."""
    _init(self, *args, **kwargs)
    self.page_size = 7


async def test_a_log_read_by_every_process_rebuilds_what_one_process_rebuilds(
    pool: asyncpg.Pool, writer: StatementWriter, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    live = await projected(pool, writer)
    await replay(pool, CompetencyProjection(CATALOG, replay_processes=1))
    in_one, parked_in_one = await tables(pool), await parked(pool)
    assert await digest(pool) == live

    here: list[int] = []  # the share of each page judged here (the workers' are counted in their own memory)
    judge_page = read_shares.judge_page
    replay_process = os.getpid()

    def counting(work: Any, page: Any, share: int, shares: int, hints: Any, *keep: Any) -> None:
        judge_page(work, page, share, shares, hints, *keep)
        if os.getpid() == replay_process:
            here.append(share)

    read_here: list[tuple[int, int]] = []  # the pages this process read from PostgreSQL
    fetch = LogPages.fetch

    def reading(self: LogPages, after: int, upto: int, conn: Any = None) -> Any:
        if os.getpid() == replay_process:
            read_here.append((after, upto))
        return fetch(self, after, upto, conn)

    monkeypatch.setattr(read_shares, "judge_page", counting)
    monkeypatch.setattr(LogPages, "__init__", small_pages)
    monkeypatch.setattr(LogPages, "fetch", reading)
    await replay(pool, CompetencyProjection(CATALOG, replay_processes=3), connect=lambda: connect(database_url))
    total = await pool.fetchval("SELECT position FROM log_head")
    assert set(here) == {0} and len(here) == -(-total // (7 * 3))  # a page in three judged here, as share 0
    assert read_here == [(k * 7, min(k * 7 + 7, total)) for k in range(0, -(-total // 7), 3)]  # and read only those
    assert await tables(pool) == in_one and await parked(pool) == parked_in_one
    assert await digest(pool) == live


@pytest.mark.parametrize("ending", ["raises", "is killed"])
async def test_a_share_worker_that_fails_fails_the_replay_and_swaps_nothing_in(
    ending: str, pool: asyncpg.Pool, writer: StatementWriter, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner, live, checkpoint, before = await filled_and_caught_up(pool, writer)
    judge_page = read_shares.judge_page

    monkeypatch.setattr(LogPages, "__init__", small_pages)
    monkeypatch.setattr(read_shares, "judge_page",
                        failing_in_forked_workers(judge_page, ending, OSError("cannot judge this page")))
    expected = (OSError, "cannot judge this page") if ending == "raises" else (ReplayWorkerFailed, "ended before")
    with pytest.raises(expected[0], match=expected[1]):
        await replay(pool, CompetencyProjection(CATALOG, replay_processes=2, replay_readers=2), connect=lambda: connect(database_url))
    await assert_nothing_swapped_in(pool, runner, live, checkpoint, before)

    monkeypatch.setattr(read_shares, "judge_page", judge_page)
    await replay(pool, CompetencyProjection(CATALOG, replay_processes=2, replay_readers=2), connect=lambda: connect(database_url))
    assert await digest(pool) == live


def after_the_workers_ended(call: Any) -> Any:
    """``call``, but in the replay's process its first call waits until its
    workers have ended: the order in which a worker dying on its first page
    and this process sending the hints of its own first page meet under load."""
    replay_process = os.getpid()
    first = [True]

    def waiting(*args: Any) -> Any:
        if os.getpid() == replay_process and first:
            first.clear()
            deadline = time.monotonic() + 60
            while multiprocessing.active_children() and time.monotonic() < deadline:
                time.sleep(0.01)
        return call(*args)

    return waiting


@pytest.mark.parametrize("ending", ["raises", "is killed"])
async def test_a_share_worker_that_ends_before_it_is_sent_hints_fails_the_replay_with_its_own_error(
    ending: str, pool: asyncpg.Pool, writer: StatementWriter, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sending hints to a share that has ended meets a broken pipe: the
    replay fails with what that share raised (or ReplayWorkerFailed when it
    was killed), not with the broken pipe."""
    runner, live, checkpoint, before = await filled_and_caught_up(pool, writer)
    judge_page = read_shares.judge_page

    monkeypatch.setattr(LogPages, "__init__", small_pages)
    monkeypatch.setattr(read_shares, "judge_page", failing_in_forked_workers(
        after_the_workers_ended(judge_page), ending, OSError("cannot judge this page")))
    expected = (OSError, "cannot judge this page") if ending == "raises" else (ReplayWorkerFailed, "ended before")
    with pytest.raises(expected[0], match=expected[1]):
        await replay(pool, CompetencyProjection(CATALOG, replay_processes=2, replay_readers=2), connect=lambda: connect(database_url))
    await assert_nothing_swapped_in(pool, runner, live, checkpoint, before)


def _key(learner: int) -> str:
    return f"mbox:mailto:cs{learner}@example.gov.vn"


async def test_links_that_change_during_the_log_give_the_shares_what_one_process_gets(
    pool: asyncpg.Pool, writer: StatementWriter, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An identifier linked, unlinked and linked to another person, voidings
    before and after their statements: each person's evidence in one share,
    the same tables as one process and the live projection's digest."""
    rng = random.Random(3)
    now = datetime(2025, 3, 1, tzinfo=timezone.utc)
    evidence: list[dict[str, Any]] = []

    async def statements(count: int) -> None:
        bodies = []
        for _ in range(count):
            module, verb = rng.choice(MODULES + [("troubleshooting", FAILED)])
            bodies.append(course_statement(rng.randrange(16), module, verb, rng.randrange(5000), rng.choice([0.5, 0.95])))
        for target in rng.sample(evidence, min(4, len(evidence))):  # voidings of earlier statements
            bodies.insert(rng.randrange(len(bodies) + 1), voiding(target["id"]))
        for _ in range(3):  # voided before they are written
            coming = course_statement(rng.randrange(16), "searching", PASSED, rng.randrange(5000))
            bodies.insert(0, voiding(coming["id"]))
            bodies.append(coming)
        evidence.extend(b for b in bodies if "result" in b)
        await write(writer, *bodies)

    await statements(40)
    await change_links(pool, "default", "link", _key(5), [_key(3)], now=now)
    await statements(40)
    await change_links(pool, "default", "unlink", _key(5), [_key(3)], now=now)
    await change_links(pool, "default", "link", _key(11), [_key(3), _key(7)], now=now)
    await statements(40)
    await change_links(pool, "default", "link", _key(2), [_key(4)], now=now)
    await statements(40)
    await ProjectionRunner(pool, CompetencyProjection(CATALOG)).catch_up()
    live = await digest(pool)
    await replay(pool, CompetencyProjection(CATALOG, replay_processes=1))
    in_one = await tables(pool)
    assert await digest(pool) == live

    monkeypatch.setattr(LogPages, "__init__", small_pages)
    for processes in (2, 3):
        await replay(pool, CompetencyProjection(CATALOG, replay_processes=processes, replay_readers=processes),
                     connect=lambda: connect(database_url))
        assert await tables(pool) == in_one
        assert await digest(pool) == live


@pytest.mark.parametrize("readers", [1, 2])
async def test_an_early_index_build_that_fails_fails_the_replay_and_swaps_nothing_in(
    readers: int, pool: asyncpg.Pool, writer: StatementWriter, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The statement tables indexed on their own connection while the
    learners fold (read_shares._indexed_early): when that connection fails
    half-way (one table indexed), the replay fails with its error once the
    fold is done, and the live tables stay as they were."""
    runner, live, checkpoint, before = await filled_and_caught_up(pool, writer)
    index_early = read_shares.index_early

    async def failing_half_way(connect_to: Any, scratch: str, tables: Any) -> None:
        await index_early(connect_to, scratch, tables[:1])
        raise ConnectionResetError("the index builder's connection was lost")

    monkeypatch.setattr(read_shares, "index_early", failing_half_way)
    with pytest.raises(ConnectionResetError, match="index builder"):
        await replay(pool, CompetencyProjection(CATALOG, replay_processes=2, replay_readers=readers),
                     connect=lambda: connect(database_url))
    await assert_nothing_swapped_in(pool, runner, live, checkpoint, before)

    monkeypatch.setattr(read_shares, "index_early", index_early)
    await replay(pool, CompetencyProjection(CATALOG, replay_processes=2, replay_readers=readers),
                 connect=lambda: connect(database_url))
    assert await digest(pool) == live


@pytest.fixture
def migrated_url(database_url: str) -> str:
    """The test's database, migrated (from the template: tests/conftest.py's MIGRATED_BY)."""
    return database_url


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_a_share_worker_runs_the_event_loop_its_replay_runs_on(
    loop: str, migrated_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``lrs replay`` runs on uvloop: its forked share worker does too (it
    ran asyncio's selector loop whatever the replay's), and a replay on
    asyncio's loop forks a worker on asyncio's; both rebuild what the live
    projection built."""
    run = asyncio.run if loop == "asyncio" else pytest.importorskip("uvloop").run
    receiving, sending = multiprocessing.get_context("fork").Pipe(duplex=False)
    on_own_connection = read_shares._share_on_own_connection

    async def telling(*args: Any) -> None:
        sending.send(type(asyncio.get_running_loop()).__module__)
        await on_own_connection(*args)

    monkeypatch.setattr(read_shares, "_share_on_own_connection", telling)
    monkeypatch.setattr(LogPages, "__init__", small_pages)

    async def live_and_replayed() -> tuple[str, str]:
        pool = await asyncpg.create_pool(migrated_url, min_size=1, max_size=4)
        writer = StatementWriter(pool, wait_ms=1.0)
        await writer.start()
        try:
            live = await projected(pool, writer)
            await replay(pool, CompetencyProjection(CATALOG, replay_processes=2, replay_readers=2),
                         connect=lambda: connect(migrated_url))
            return live, await digest(pool)
        finally:
            await writer.close()
            await pool.close()

    live, replayed = run(live_and_replayed())
    assert replayed == live
    assert receiving.recv() == ("uvloop" if loop == "uvloop" else "asyncio.unix_events")
    assert not receiving.poll()


async def test_a_log_with_positions_cut_out_is_refused_in_shares_as_in_one_process(
    pool: asyncpg.Pool, writer: StatementWriter, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Positions cut out of the log (a page of positions with no event,
    many such pages in a row, scattered ones, a last page of fewer events):
    the chain breaks at the first one missing, and every way of reading
    the log says so, as `lrs audit verify` does, and swaps nothing in."""
    runner, live, checkpoint, before = await filled_and_caught_up(pool, writer, statements=400)
    total = await pool.fetchval("SELECT position FROM log_head")
    assert total > 7 * 40
    async with pool.acquire() as conn:  # the log is append-only: its rule set aside to cut holes in it
        await conn.execute("SET session_replication_role = replica")
        await conn.execute(
            "DELETE FROM events WHERE position BETWEEN 8 AND 14 OR position BETWEEN 29 AND 84"
            " OR (position BETWEEN 120 AND 200 AND position % 3 = 0) OR position BETWEEN $1 AND $2",
            total - total % 7 - 5, total - 1)
        await conn.execute("RESET session_replication_role")
    with pytest.raises(ChainBroken, match="first altered or missing position 8 "):
        await replay(pool, CompetencyProjection(CATALOG, replay_processes=1))
    await assert_nothing_swapped_in(pool, runner, live, checkpoint, before)

    monkeypatch.setattr(LogPages, "__init__", small_pages)
    for processes in (2, 3):
        with pytest.raises(ChainBroken, match="first altered or missing position 8 "):
            await replay(pool, CompetencyProjection(CATALOG, replay_processes=processes, replay_readers=processes),
                         connect=lambda: connect(database_url))
        await assert_nothing_swapped_in(pool, runner, live, checkpoint, before)


@pytest.mark.parametrize("processes", [2, 3])
async def test_a_replay_in_shares_that_stops_short_of_the_logs_end_fails_and_swaps_nothing_in(
    processes: int, pool: asyncpg.Pool, writer: StatementWriter, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every process hears of the same pages, so they all agree on where they
    stopped even when that is short of the log's end (here the last page
    is never read: every process counts one page fewer); the replay must
    fail on it rather than swap in the projection of part of the log."""
    runner, live, checkpoint, before = await filled_and_caught_up(pool, writer)
    monkeypatch.setattr(LogPages, "__init__", small_pages)
    monkeypatch.setattr(read_shares, "page_count", lambda total, size: -(-total // size) - 1)
    total = await pool.fetchval("SELECT position FROM log_head")
    with pytest.raises(read_shares.ReplayReadShort, match=f"up to position {(total - 1) // 7 * 7}; the log ends at {total}$"):
        await replay(pool, CompetencyProjection(CATALOG, replay_processes=processes, replay_readers=processes),
                     connect=lambda: connect(database_url))
    await assert_nothing_swapped_in(pool, runner, live, checkpoint, before)


@pytest.mark.parametrize("ending", ["raises", "is killed"])
def test_a_share_worker_on_uvloop_that_fails_fails_the_replay_and_leaves_nothing_behind(
    ending: str, migrated_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under uvloop (as ``lrs replay`` runs) a share worker that raises or
    is killed fails the replay with its error, leaves no process and no
    connection of its own open, and swaps nothing in."""
    uvloop = pytest.importorskip("uvloop")
    judge_page = read_shares.judge_page
    monkeypatch.setattr(LogPages, "__init__", small_pages)

    async def failed_replay() -> None:
        pool = await asyncpg.create_pool(migrated_url, min_size=1, max_size=4)
        writer = StatementWriter(pool, wait_ms=1.0)
        await writer.start()
        try:
            runner, live, checkpoint, before = await filled_and_caught_up(pool, writer)
            connections = await pool.fetchval("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")
            with monkeypatch.context() as patch:
                patch.setattr(read_shares, "judge_page",
                              failing_in_forked_workers(judge_page, ending, OSError("cannot judge this page")))
                expected = (OSError, "cannot judge") if ending == "raises" else (ReplayWorkerFailed, "ended before")
                with pytest.raises(expected[0], match=expected[1]):
                    await asyncio.wait_for(replay(
                        pool, CompetencyProjection(CATALOG, replay_processes=2, replay_readers=2),
                        connect=lambda: connect(migrated_url)), 120)
            await assert_nothing_swapped_in(pool, runner, live, checkpoint, before)
            deadline = time.monotonic() + 10  # a killed backend's session ends a moment after its client
            while time.monotonic() < deadline and await pool.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()") > connections:
                await asyncio.sleep(0.05)
            assert await pool.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()") <= connections
        finally:
            await writer.close()
            await pool.close()

    uvloop.run(failed_replay())


async def test_a_replay_in_shares_reports_its_progress_up_to_the_end_of_the_log_in_order(
    pool: asyncpg.Pool, writer: StatementWriter, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``lrs replay``'s bar: the progress of a replay in shares goes up page
    by page to the log's last position, also when the last page, or any,
    was read by a worker (this process hears of it from that worker)."""
    await projected(pool, writer)
    total = await pool.fetchval("SELECT position FROM log_head")
    count = read_shares.page_count(total, 7)
    processes = 2 if (count - 1) % 2 else 3
    assert (count - 1) % processes  # the last page is a worker's
    monkeypatch.setattr(LogPages, "__init__", small_pages)
    done: list[int] = []
    await replay(pool, CompetencyProjection(CATALOG, replay_processes=processes, replay_readers=2),
                 progress=lambda position, _: done.append(position), connect=lambda: connect(database_url))
    assert done == [min(k * 7 + 7, total) for k in range(count)]


async def test_statements_written_while_a_replay_reads_in_shares_are_applied_after_it(
    pool: asyncpg.Pool, writer: StatementWriter, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The shares read the log up to its position when the replay started
    (the workers too: none reads past it); what is written meanwhile, a
    voiding of a statement read in shares among it, is applied by the
    swap's catch-up: the digest the live projection reaches."""
    await projected(pool, writer)
    start = await pool.fetchval("SELECT position FROM log_head")
    voided = course_statement(3, MODULES[0][0], PASSED, 10)
    await write(writer, voided)
    own_pages = read_shares.own_pages
    replay_process = os.getpid()
    read: list[int] = []
    fetch = LogPages.fetch

    def reading(self: LogPages, after: int, upto: int, conn: Any = None) -> Any:
        read.append(upto)
        return fetch(self, after, upto, conn)

    async def writing_meanwhile(pages: LogPages, share: int, *args: Any) -> Any:
        first = True
        async for page in own_pages(pages, share, *args):
            yield page
            if first and os.getpid() == replay_process:
                first = False
                await write(writer, *[course_statement(n, MODULES[1][0], PASSED, 20 + n) for n in range(30)],
                            voiding(voided["id"]))

    monkeypatch.setattr(LogPages, "__init__", small_pages)
    monkeypatch.setattr(LogPages, "fetch", reading)
    monkeypatch.setattr(read_shares, "own_pages", writing_meanwhile)
    await replay(pool, CompetencyProjection(CATALOG, replay_processes=2, replay_readers=2),
                 connect=lambda: connect(database_url))
    replayed = await digest(pool)
    assert max(read) <= start + 1  # this process read no page past the start (the writes came after its first)
    await ProjectionRunner(pool, CompetencyProjection(CATALOG)).catch_up()
    assert await digest(pool) == replayed
    await replay(pool, CompetencyProjection(CATALOG, replay_processes=1))
    assert await digest(pool) == replayed
