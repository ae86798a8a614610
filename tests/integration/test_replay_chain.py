"""A replay refuses a log whose hash chain breaks, however it reads it
(projections/log_chain.py), against real PostgreSQL: an event's payload,
a roster event, an event's link to the one before it (a page's first,
caught only at the seam between pages read by different processes) or a
deleted event, each altered as the database's superuser, make the replay
stop at the position `lrs audit verify` names, leave the live tables,
digest and checkpoint as they were and drop its scratch tables.  And
``--compare`` (projections/replay_compare.py): the live projection and the
one rebuilt from the log, digested at the same position, the live one
left as it is."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from typing import Any

import asyncpg
import msgspec
import pytest

from lrs.commands.audit import verify_log
from lrs.eventlog import record_hash
from lrs.payload_codec import open_payload
from lrs.store import StatementWriter
from lrs.store.log_reader import read_events_after
from lrs.store.pool import connect
from projections.competency import parallel_replay, read_shares
from projections.competency.catalog import FRAMEWORKS_DIR
from projections.competency.store import CompetencyProjection, digest
from projections.log_chain import ChainBroken
from projections.replay import LogPages, replay
from projections.replay_compare import compare
from projections.runner import ProjectionRunner
from projections.units.roster import parse_json
from projections.units.store import load_roster
from tests.integration.competency_statements import CATALOG, learner_key
from tests.integration.test_replay_shares import assert_nothing_swapped_in, fill, tables

PAGE = 7  # events a page: pages of a short log cross the shares
# How the replay reads the log: (processes, readers).  One process; every
# process reading its pages (read_shares.py); three processes of which two
# read chunks (parallel_replay.py).
READINGS = {"one process": (1, 1), "2 shares": (2, 2), "3 shares": (3, 3), "2 readers of 3": (3, 2)}
SCRATCH = "SELECT count(*) FROM pg_namespace WHERE nspname = 'replay_competency'"
UNITS = [
    {"id": "mic", "kind": "ministry", "name": "Ministry"},
    {"id": "mic-a", "parent": "mic", "kind": "agency", "name": "Agency A"},
    {"id": "mic-b", "parent": "mic", "kind": "agency", "name": "Agency B"},
]


@pytest.fixture(autouse=True)
def small_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pages of PAGE events, and every way of reading used however short the log."""
    init = LogPages.__init__

    def small(self: LogPages, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        self.page_size = PAGE

    monkeypatch.setattr(LogPages, "__init__", small)
    monkeypatch.setattr(read_shares, "MIN_SHARED_EVENTS", 1)
    monkeypatch.setattr(parallel_replay, "MIN_PARALLEL_EVENTS", 1)


async def audited_log(pool: asyncpg.Pool, writer: StatementWriter) -> tuple[ProjectionRunner, str, int, dict[str, Any]]:
    """Statements, a roster load among them, projected live: the runner,
    digest, checkpoint and tables a refused replay must leave as they are."""
    await fill(writer, statements=30)
    await load_roster(pool, "default", parse_json({"units": UNITS, "memberships": [
        {"learner": learner_key(n), "unit": "mic-a" if n % 2 else "mic-b", "valid_from": "2024-01-01T00:00:00Z"}
        for n in range(24)
    ]}), now=datetime(2025, 6, 1, tzinfo=timezone.utc))
    await fill(writer, statements=120)
    runner = ProjectionRunner(pool, CompetencyProjection(CATALOG))
    await runner.catch_up()
    return runner, await digest(pool), await runner.checkpoint(), await tables(pool)


async def audited_log_in(database_url: str) -> str:
    """:func:`audited_log` on a pool of its own (for a test that runs a
    command in its own event loop after); the live digest."""
    async with asyncpg.create_pool(database_url, min_size=1, max_size=4) as own:
        writer = StatementWriter(own, wait_ms=1.0)
        await writer.start()
        try:
            await audited_log(own, writer)
        finally:
            await writer.close()
        return await digest(own)


async def tamper(pool: asyncpg.Pool, sql: str, *args: Any) -> None:
    """As the superuser the tests run as: the append-only trigger off, the change, the trigger on."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("ALTER TABLE events DISABLE TRIGGER events_append_only")
        await conn.execute(sql, *args)
        await conn.execute("ALTER TABLE events ENABLE TRIGGER events_append_only")


async def altered_payload(pool: asyncpg.Pool, position: int, old: bytes, new: bytes) -> None:
    stored = await pool.fetchval("SELECT payload FROM events WHERE position = $1", position)
    altered = open_payload(stored).replace(old, new, 1)
    assert altered != open_payload(stored)
    await tamper(pool, "UPDATE events SET payload = $1 WHERE position = $2", altered, position)


async def alter(pool: asyncpg.Pool, alteration: str) -> int:
    """Alter the log as ``alteration`` says; the first position it breaks."""
    if alteration == "payload":  # a statement read by a worker in two shares, by this process in three
        position = 3 * PAGE + 3
        assert await pool.fetchval("SELECT event_type FROM events WHERE position = $1", position) == "statement"
        await altered_payload(pool, position, b'"mailto:', b'"mailto:x')
        return position
    if alteration == "roster":
        position = await pool.fetchval("SELECT min(position) FROM events WHERE event_type = 'roster'")
        await altered_payload(pool, position, b'"mic-a"', b'"mic-b"')
        return position
    position = 5 * PAGE + 1  # the first event of a page read by a worker (in two shares and in three)
    if alteration == "relinked":  # names another hash before it, and is hashed again over it: its page holds
        (record,) = await read_events_after(pool, position - 1, 1)
        forged = msgspec.structs.replace(record, prev_hash=b"\x01" * 32)
        await tamper(pool, "UPDATE events SET prev_hash = $1, hash = $2 WHERE position = $3",
                     forged.prev_hash, record_hash(forged), position)
        return position
    assert alteration == "deleted"
    await tamper(pool, "DELETE FROM events WHERE position = $1", position)
    return position


@pytest.mark.parametrize("reading", sorted(READINGS))
@pytest.mark.parametrize("alteration", ["payload", "roster", "relinked", "deleted"])
async def test_a_replay_of_an_altered_log_stops_where_audit_verify_does_and_swaps_nothing_in(
    alteration: str, reading: str, pool: asyncpg.Pool, writer: StatementWriter, database_url: str
) -> None:
    runner, live, checkpoint, before = await audited_log(pool, writer)
    bad = await alter(pool, alteration)
    await assert_refused(pool, database_url, reading, bad)
    await assert_nothing_swapped_in(pool, runner, live, checkpoint, before)


async def assert_refused(pool: asyncpg.Pool, database_url: str, reading: str, bad: int) -> None:
    """``lrs audit verify`` names ``bad``; a replay read as ``reading`` says
    so and leaves no scratch schema."""
    assert (await verify_log(pool, 100))[0] == bad
    processes, readers = READINGS[reading]
    with pytest.raises(ChainBroken, match=rf"^hash chain broken: first altered or missing position {bad} "):
        await replay(pool, CompetencyProjection(CATALOG, replay_processes=processes, replay_readers=readers),
                     connect=lambda: connect(database_url))
    assert await pool.fetchval(SCRATCH) == 0


@pytest.mark.parametrize("reading", ["one process", "2 shares"])
async def test_the_last_events_deleted_break_the_chain_at_the_first_of_them(
    reading: str, pool: asyncpg.Pool, writer: StatementWriter, database_url: str
) -> None:
    """The log head still names the events deleted from the end of the log."""
    runner, live, checkpoint, before = await audited_log(pool, writer)
    total = await pool.fetchval("SELECT position FROM log_head")
    await tamper(pool, "DELETE FROM events WHERE position > $1", total - 3)
    await assert_refused(pool, database_url, reading, total - 2)
    await assert_nothing_swapped_in(pool, runner, live, checkpoint, before)


async def test_an_event_altered_after_the_rebuild_read_the_log_stops_the_swap(
    pool: asyncpg.Pool, writer: StatementWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the live runner committed while the rebuild read is applied by
    the swap's catch-up: checked to go on from the chain the rebuild walked."""
    runner, live, checkpoint, before = await audited_log(pool, writer)
    total = await pool.fetchval("SELECT position FROM log_head")
    rebuild = CompetencyProjection.rebuild

    async def altered_meanwhile(self: Any, conn: Any, pages: Any, **kwargs: Any) -> Any:
        done = await rebuild(self, conn, pages, **kwargs)
        await fill(writer, statements=20)
        await altered_payload(pool, total + 2, b'"mailto:', b'"mailto:x')
        return done

    monkeypatch.setattr(CompetencyProjection, "rebuild", altered_meanwhile)
    with pytest.raises(ChainBroken, match=f"position {total + 2} "):
        await replay(pool, CompetencyProjection(CATALOG, replay_processes=1))
    await assert_nothing_swapped_in(pool, runner, live, checkpoint, before)
    assert await pool.fetchval(SCRATCH) == 0


@pytest.mark.parametrize("reading", ["one process", "3 shares"])
async def test_an_intact_log_replays_to_the_live_digest(
    reading: str, pool: asyncpg.Pool, writer: StatementWriter, database_url: str
) -> None:
    _, live, _, before = await audited_log(pool, writer)
    processes, readers = READINGS[reading]
    total = await pool.fetchval("SELECT position FROM log_head")
    assert await replay(pool, CompetencyProjection(CATALOG, replay_processes=processes, replay_readers=readers),
                        connect=lambda: connect(database_url)) == total
    assert await digest(pool) == live and await tables(pool) == before
    assert await pool.fetchval(SCRATCH) == 0


async def test_compare_finds_the_live_projection_equal_to_the_log_and_leaves_it_as_it_is(
    pool: asyncpg.Pool, writer: StatementWriter, database_url: str
) -> None:
    runner, live, checkpoint, before = await audited_log(pool, writer)
    rebuilds = await pool.fetchval("SELECT rebuilds FROM projection_checkpoints WHERE name = 'competency'")
    found = await compare(pool, CompetencyProjection(CATALOG, replay_processes=2, replay_readers=2),
                          connect=lambda: connect(database_url))
    assert (found.live, found.rebuilt, found.position, found.equal) == (live, live, checkpoint, True)
    await assert_nothing_swapped_in(pool, runner, live, checkpoint, before)
    assert await pool.fetchval("SELECT rebuilds FROM projection_checkpoints WHERE name = 'competency'") == rebuilds
    assert await pool.fetchval(SCRATCH) == 0


async def test_compare_finds_an_altered_live_table_unequal_and_leaves_it_altered(
    pool: asyncpg.Pool, writer: StatementWriter, database_url: str
) -> None:
    runner, live, checkpoint, _ = await audited_log(pool, writer)
    await pool.execute("DELETE FROM competency_certifications WHERE ctid = (SELECT min(ctid) FROM competency_certifications)")
    altered, altered_tables = await digest(pool), await tables(pool)
    assert altered != live
    found = await compare(pool, CompetencyProjection(CATALOG, replay_processes=1))
    assert (found.live, found.rebuilt, found.equal) == (altered, live, False)
    await assert_nothing_swapped_in(pool, runner, altered, checkpoint, altered_tables)
    assert await pool.fetchval(SCRATCH) == 0


async def test_compare_waits_for_a_live_runner_behind_the_log_and_digests_both_at_its_position(
    pool: asyncpg.Pool, writer: StatementWriter, database_url: str
) -> None:
    """The live runner keeps running: the comparison waits for it to reach
    the log's position the rebuild read up to, and compares there."""
    runner, *_ = await audited_log(pool, writer)
    await fill(writer, statements=20)
    total = await pool.fetchval("SELECT position FROM log_head")

    async def runner_later() -> None:
        await asyncio.sleep(1.0)
        await runner.catch_up()

    catching_up = asyncio.ensure_future(runner_later())
    found = await compare(pool, CompetencyProjection(CATALOG, replay_processes=1))
    await catching_up
    assert found.position == total and found.equal and found.live == await digest(pool)


async def test_compare_of_an_altered_log_is_refused(pool: asyncpg.Pool, writer: StatementWriter, database_url: str) -> None:
    runner, live, checkpoint, before = await audited_log(pool, writer)
    bad = await alter(pool, "roster")
    with pytest.raises(ChainBroken, match=f"position {bad} "):
        await compare(pool, CompetencyProjection(CATALOG, replay_processes=2, replay_readers=2),
                      connect=lambda: connect(database_url))
    await assert_nothing_swapped_in(pool, runner, live, checkpoint, before)
    assert await pool.fetchval(SCRATCH) == 0


def _lrs_replay(database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                *options: str) -> tuple[int, str, str]:
    from lrs.cli import main

    monkeypatch.setenv("LRS_DATABASE_URL", database_url)
    monkeypatch.setattr("lrs.commands.common.setup", lambda settings, **options: None)
    code = main(["replay", "competency", "--processes", "2", "--batch-size", str(PAGE),
                 "--frameworks", str(FRAMEWORKS_DIR), *options])
    captured = capsys.readouterr()
    return code, captured.out.strip(), captured.err.strip()


def test_lrs_replay_of_an_altered_log_exits_1_with_one_line_and_compare_says_equal_or_not(
    database_url: str, pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async def altered() -> int:
        async with asyncpg.create_pool(database_url, min_size=1, max_size=2) as own:
            return await alter(own, "roster")

    async def live_digest() -> str:
        async with asyncpg.create_pool(database_url, min_size=1, max_size=2) as own:
            return await digest(own)

    live = asyncio.run(audited_log_in(database_url))
    code, out, err = _lrs_replay(database_url, monkeypatch, capsys, "--compare")
    assert code == 0 and err == ""
    assert out.splitlines()[0].startswith(f"live competency {live} position ")
    assert out.splitlines()[1].startswith(f"rebuilt competency {live} position ")
    assert out.splitlines()[2] == "equal: the live projection is what the log gives"

    async def live_row_deleted() -> str:
        async with asyncpg.create_pool(database_url, min_size=1, max_size=2) as own:
            await own.execute(
                "DELETE FROM competency_certifications WHERE ctid = (SELECT min(ctid) FROM competency_certifications)")
            return await digest(own)

    changed = asyncio.run(live_row_deleted())
    code, out, err = _lrs_replay(database_url, monkeypatch, capsys, "--compare")
    assert code == 1 and err == "" and changed != live
    assert out.splitlines()[0].startswith(f"live competency {changed} position ")
    assert out.splitlines()[1].startswith(f"rebuilt competency {live} position ")
    assert out.splitlines()[2] == "different: the live projection is not what the log gives"
    assert asyncio.run(live_digest()) == changed

    bad = asyncio.run(altered())
    for options in ((), ("--compare",)):
        code, out, err = _lrs_replay(database_url, monkeypatch, capsys, *options)
        assert (code, out) == (1, "")
        assert err == (f"lrs replay competency: hash chain broken: first altered or missing position {bad} "
                       f"(intact through position {bad - 1}); nothing was swapped in")
        assert asyncio.run(live_digest()) == changed
