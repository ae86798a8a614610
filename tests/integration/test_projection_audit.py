"""``lrs audit verify`` against a log that an administrator tampered with."""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator

import asyncpg
import msgspec
import pytest

from lrs.commands.audit import verify_log
from lrs.payload_codec import open_payload
from lrs.store import StatementWriter, create_pool
from lrs.service import migrate
from tests.integration.competency_statements import course_statement, write


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    await migrate(database_url)
    pool = await create_pool(database_url, min_size=1, max_size=4)
    writer = StatementWriter(pool, wait_ms=1.0)
    await writer.start()
    try:
        for n in range(12):  # twelve single-statement commits: positions 1..12
            await write(writer, course_statement(n % 3, "device-security", "http://adlnet.gov/expapi/verbs/passed", n))
    finally:
        await writer.close()
    yield pool
    await pool.close()


async def tamper(pool: asyncpg.Pool, sql: str, *args: Any) -> None:
    """As the superuser the tests run as: switch off the append-only trigger, change, switch it on."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("ALTER TABLE events DISABLE TRIGGER events_append_only")
        await conn.execute(sql, *args)
        await conn.execute("ALTER TABLE events ENABLE TRIGGER events_append_only")


def run_verify(database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    from lrs.cli import main

    monkeypatch.setenv("LRS_DATABASE_URL", database_url)
    monkeypatch.setattr("lrs.commands.audit.setup", lambda settings, **_: None)
    code = main(["audit", "verify", "--batch-size", "5", "--no-record"])
    return code, capsys.readouterr().out.strip()


async def test_intact_log_verifies_in_batches(pool: asyncpg.Pool) -> None:
    seen: list[tuple[int, int]] = []
    assert await verify_log(pool, 5, lambda done, total: seen.append((done, total))) == (None, 12)
    assert seen == [(5, 12), (10, 12), (12, 12)]


async def test_altered_payload_is_reported_at_its_position(pool: asyncpg.Pool) -> None:
    before = await pool.fetchval("SELECT payload FROM events WHERE position = 7")
    altered = open_payload(before).replace(b"0.9", b"1.0")
    assert altered != open_payload(before)
    # Written back as JSON (a row may hold either form, lrs/payload_codec.py).
    await tamper(pool, "UPDATE events SET payload = $1 WHERE position = 7", altered)
    assert await pool.fetchval("SELECT payload FROM events WHERE position = 7") != before
    assert (await verify_log(pool, 5))[0] == 7
    assert (await verify_log(pool, 100))[0] == 7


async def test_deleted_events_are_reported_missing(pool: asyncpg.Pool) -> None:
    await tamper(pool, "DELETE FROM events WHERE position = 4")
    assert (await verify_log(pool, 5))[0] == 4
    await tamper(pool, "DELETE FROM events WHERE position >= 4")
    assert (await verify_log(pool, 5))[0] == 4  # the log head still names 12 events


async def test_rehashed_event_still_breaks_the_next_link(pool: asyncpg.Pool) -> None:
    from lrs.eventlog import record_hash
    from lrs.store.log_reader import read_events_after

    (record,) = await read_events_after(pool, 8, 1)
    forged = msgspec.structs.replace(record, payload=bytes(record.payload).replace(b"0.9", b"0.1"))
    assert forged.payload != record.payload
    await tamper(pool, "UPDATE events SET payload = $1, hash = $2 WHERE position = 9", forged.payload, record_hash(forged))
    assert (await verify_log(pool, 5))[0] == 10  # event 9 is self-consistent; event 10 names the old hash



@pytest.mark.parametrize("batch_size", [1, 5, 100])
async def test_the_event_at_the_head_rewritten_is_named_though_later_events_were_written_meanwhile(
    pool: asyncpg.Pool, batch_size: int
) -> None:
    """Verify reads log_head first; events committed after it are read too.
    The one at the head rewritten and hashed again is named at the head (by
    log_head's hash), not at the next event, whose link to its old hash
    breaks only after it.  The log head set back to 11 stands for a head read
    before event 12 was committed."""
    from lrs.eventlog import record_hash
    from lrs.store.log_reader import read_events_after

    (record,) = await read_events_after(pool, 10, 1)
    await pool.execute("UPDATE log_head SET position = 11, hash = $1", record.hash)
    assert await verify_log(pool, batch_size) == (None, 12)
    forged = msgspec.structs.replace(record, payload=bytes(record.payload).replace(b"0.9", b"0.1"))
    assert forged.payload != record.payload
    await tamper(pool, "UPDATE events SET payload = $1, hash = $2 WHERE position = 11", forged.payload, record_hash(forged))
    assert await verify_log(pool, batch_size) == (11, 10)


def test_lrs_audit_verify_exit_codes(
    database_url: str, pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = run_verify(database_url, monkeypatch, capsys)
    assert (code, out) == (0, "hash chain intact through position 12")

    async def alter() -> None:
        conn = await asyncpg.connect(database_url)
        try:
            await conn.execute("ALTER TABLE events DISABLE TRIGGER events_append_only")
            await conn.execute("UPDATE events SET tenant = 'elsewhere' WHERE position = 11")
        finally:
            await conn.close()

    asyncio.run(alter())
    code, out = run_verify(database_url, monkeypatch, capsys)
    assert (code, out) == (1, "hash chain broken: first altered or missing position 11 (intact through position 10)")
