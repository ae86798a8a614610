"""The history checker of the failure-injection tests.

``post_loop`` keeps POSTing batches of new statements and records the ids of
every batch answered 200 (acknowledged: durably committed); the checks then
hold the event log, the read model and the stream to that history.
"""

from __future__ import annotations

import asyncio
import collections

import aiohttp
import asyncpg

from lrs.store.log_reader import read_events_after
from tests.e2e.conftest import xapi_headers
from tests.e2e.statements import new_id, statement


async def post_loop(base_url: str, acked: list[str], errors: list[str], stop: asyncio.Event,
                    batch: int = 10) -> None:
    async with aiohttp.ClientSession() as session:
        while not stop.is_set():
            ids = [new_id() for _ in range(batch)]
            body = [statement(statement_id=sid, learner=f"{sid[:8]}@example.org") for sid in ids]
            try:
                async with session.post(base_url + "/xapi/statements", json=body, headers=xapi_headers()) as r:
                    if r.status == 200:
                        assert await r.json() == ids
                        acked.extend(ids)
                    else:
                        # A 503 without Retry-After is recorded as such: callers accept only "503".
                        missing = r.status == 503 and "Retry-After" not in r.headers
                        errors.append(f"{r.status}{' without Retry-After' if missing else ''}: {await r.text()}")
                        await asyncio.sleep(0.05)  # no tight loop of refusals during an outage
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                errors.append(type(exc).__name__)
                if stop.is_set():
                    return
                await asyncio.sleep(0.05)


async def log_rows(database_url: str) -> list:
    conn = await asyncpg.connect(database_url)
    try:
        return await read_events_after(conn, 0, 10_000_000)
    finally:
        await conn.close()


def assert_exactly_once(acked: list[str], rows: list, streamed: list) -> None:
    logged = collections.Counter(str(row.statement_id) for row in rows)
    missing = [sid for sid in acked if logged[sid] != 1]
    assert not missing, f"{len(missing)} acknowledged statements not in the log exactly once"
    on_stream = collections.Counter(e.statement_id for e in streamed)
    assert len(streamed) == len(rows), "stream and log differ in size"
    assert all(count == 1 for count in on_stream.values()), "a statement appears twice on the stream"
    assert set(on_stream) == set(logged)
    by_msg_id = collections.Counter(e.msg_id for e in streamed)
    assert max(by_msg_id.values()) == 1
    assert [e.position for e in streamed] == sorted(e.position for e in streamed)


async def read_all_statements(base_url: str, limit: int = 1000) -> list[dict]:
    """Every statement GET /xapi/statements returns, paging through ``more``."""
    statements: list[dict] = []
    async with aiohttp.ClientSession() as session:
        url: str | None = f"{base_url}/xapi/statements?limit={limit}"
        while url:
            async with session.get(url, headers=xapi_headers()) as response:
                assert response.status == 200, await response.text()
                page = await response.json()
            statements.extend(page["statements"])
            url = base_url + page["more"] if page.get("more") else None
    return statements


async def read_all_statement_ids(base_url: str) -> collections.Counter[str]:
    """How often each statement id is returned by paging through GET /xapi/statements."""
    return collections.Counter(s["id"] for s in await read_all_statements(base_url))
