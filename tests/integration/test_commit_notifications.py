"""Writers sharing the log announce their commits to other processes' listeners."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg

from lrs.ingest.prepare import prepare_statements
from lrs.store import StatementWriter
from lrs.store.commit_notifications import commit_notifications

AUTHORITY = {"objectType": "Agent", "mbox": "mailto:authority@example.com"}


def _batch(size: int) -> list:
    bodies = [{"actor": {"mbox": f"mailto:l{n}@example.com"}, "verb": {"id": "http://example.com/v"},
               "object": {"id": "http://example.com/a"}} for n in range(size)]
    return prepare_statements(bodies, version="1.0.3", authority=AUTHORITY, new_id=uuid.uuid4)


async def test_a_shared_log_writer_announces_each_commit_with_its_head(pool: asyncpg.Pool, database_url: str) -> None:
    heard: list[int] = []
    got = asyncio.Event()

    def on_commit(position: int) -> None:
        heard.append(position)
        got.set()

    shared = StatementWriter(pool, wait_ms=1.0, shared_log=True)
    await shared.start()
    try:
        async with commit_notifications(database_url, on_commit):
            await shared.append("default", _batch(3))
            await asyncio.wait_for(got.wait(), 10)  # bounded wait for delivery, not a timing assertion
            got.clear()
            await shared.append("default", _batch(2))
            await asyncio.wait_for(got.wait(), 10)
    finally:
        await shared.close()
    head = await pool.fetchval("SELECT position FROM log_head")
    assert heard == [3, 5] == [3, head]


async def test_a_writer_in_one_process_announces_nothing(pool: asyncpg.Pool, database_url: str) -> None:
    heard: list[int] = []
    marker = asyncio.Event()

    def on_commit(position: int) -> None:
        heard.append(position)
        if position == 0:
            marker.set()

    alone = StatementWriter(pool, wait_ms=1.0)
    await alone.start()
    try:
        async with commit_notifications(database_url, on_commit):
            await alone.append("default", _batch(2))
            # PostgreSQL delivers notifications in commit order: one sent after
            # the writer's commit arrives after anything that commit sent.
            await pool.execute("SELECT pg_notify('lrs_log', '0')")
            await asyncio.wait_for(marker.wait(), 10)
    finally:
        await alone.close()
    assert heard == [0]
