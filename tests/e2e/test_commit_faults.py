"""Faults inside the statement writer's ``COMMIT; BEGIN`` round trip.

When requests wait while a group commits, the writer sends the group's
COMMIT and the next group's BEGIN in one round trip and keeps the connection
(lrs/store/writer.py).  Here that round trip fails: its backend is
terminated while the COMMIT runs (a deferred trigger makes the COMMIT take a
while) or while the kept connection waits for the next group, or the COMMIT
itself fails (a serialization failure at commit).  Meanwhile a second writer
on its own pool (another worker) appends to the same log.  Every 200 must be
in the log exactly once, every other answer a 503 with Retry-After, the hash
chain unforked, and the writers must go on once the faults stop.
"""

from __future__ import annotations

import asyncio
import collections
import random
import uuid
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from lrs.eventlog import verify_chain
from lrs.http import keys
from lrs.ingest.prepare import prepare_statements
from lrs.store import StatementWriter, create_pool
from lrs.store.availability import storage_unavailable
from lrs.store.log_reader import read_events_after
from tests.e2e.conftest import xapi_headers
from tests.e2e.statements import statement

# A deferred trigger on the log head runs inside COMMIT, before the commit
# record: it takes ``sleep_s`` there, and in a chained round trip
# (current_query() is the whole 'COMMIT; BEGIN ...' string) fails a
# ``fail_share`` of the commits with a serialization failure.
COMMIT_FAULTS = """
CREATE TABLE commit_faults (
    singleton bool PRIMARY KEY DEFAULT true, sleep_s float8 NOT NULL DEFAULT 0, fail_share float8 NOT NULL DEFAULT 0
);
INSERT INTO commit_faults DEFAULT VALUES;
CREATE FUNCTION commit_fault() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE f commit_faults;
BEGIN
    SELECT * INTO f FROM commit_faults;
    PERFORM pg_sleep(f.sleep_s);
    IF current_query() LIKE 'COMMIT; BEGIN%' AND random() < f.fail_share THEN
        RAISE EXCEPTION 'injected failure at commit' USING ERRCODE = 'serialization_failure';
    END IF;
    RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER commit_fault AFTER UPDATE ON log_head DEFERRABLE INITIALLY DEFERRED
FOR EACH ROW EXECUTE FUNCTION commit_fault();
"""
# The writers' backends in the chained round trip, or kept after it for the next group.
TERMINATE_CHAINED = """
SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid() AND query LIKE 'COMMIT; BEGIN%'
"""
LOAD_S = 1.5
URL = "/xapi/statements"


@pytest.mark.parametrize("fault", ["terminate", "fail"])
async def test_every_200_is_committed_when_the_chained_commit_fails(
    client: TestClient, database_url: str, fault: str
) -> None:
    control = await asyncpg.connect(database_url)
    await control.execute(COMMIT_FAULTS)
    await control.execute("UPDATE commit_faults SET sleep_s = 0.02, fail_share = $1", 0.3 if fault == "fail" else 0.0)
    second_pool = await create_pool(database_url, min_size=1, max_size=2, application_name="lrs-second")
    second = StatementWriter(second_pool, wait_ms=0.0)
    await second.start()
    acked: list[str] = []
    refused: collections.Counter[str] = collections.Counter()
    terminated = 0
    stop = asyncio.Event()

    async def post_loop() -> None:
        while not stop.is_set():
            ids = [str(uuid.uuid4()) for _ in range(2)]
            response = await client.post(URL, json=[statement(statement_id=i) for i in ids], headers=xapi_headers())
            if response.status == 200:
                assert await response.json() == ids
                acked.extend(ids)
            else:
                refused[f"{response.status} Retry-After={response.headers.get('Retry-After')}"] += 1
            # arriving while groups commit, so that COMMITs begin the next group's transaction
            await asyncio.sleep(random.random() * 0.02)

    async def second_worker() -> None:
        while not stop.is_set():
            body = statement(statement_id=str(uuid.uuid4()), learner="second@example.org")
            prepared = prepare_statements([body], version="1.0.3", authority={"mbox": "mailto:w2@example.org"},
                                          new_id=uuid.uuid4)
            try:
                await second.append("default", prepared)
                acked.append(body["id"])
            except Exception as exc:
                refused["503 Retry-After=5" if storage_unavailable(exc) else repr(exc)] += 1
            await asyncio.sleep(random.random() * 0.02)

    async def terminate() -> None:
        nonlocal terminated
        while not stop.is_set():
            terminated += await control.fetchval(TERMINATE_CHAINED)
            await asyncio.sleep(random.random() * 0.03)

    loops = [asyncio.create_task(post_loop()) for _ in range(6)] + [asyncio.create_task(second_worker())]
    if fault == "terminate":
        loops.append(asyncio.create_task(terminate()))
    try:
        await asyncio.sleep(LOAD_S)
    finally:
        stop.set()
        await asyncio.gather(*loops)
        await control.execute("UPDATE commit_faults SET sleep_s = 0, fail_share = 0")
    try:
        # the writers go on
        after = str(uuid.uuid4())
        assert (await client.post(URL, json=statement(statement_id=after), headers=xapi_headers())).status == 200
        acked.append(after)
        rows = await read_events_after(control, 0, 1_000_000)
        assert verify_chain(rows) is None  # one chain, however the two writers' groups interleaved
        logged = collections.Counter(str(row.statement_id) for row in rows)
        assert not [i for i in acked if logged[i] != 1], "a 200 not in the log exactly once"
        assert set(refused) == {"503 Retry-After=5"}, refused  # some refused, each a 503 with Retry-After
        if fault == "terminate":
            assert terminated > 0  # backends killed inside or just after 'COMMIT; BEGIN ...'
        else:
            assert client.app[keys.WRITER].groups_chained > 0  # and the failures were of chained commits only
    finally:
        await second.close()
        await second_pool.close()
        await control.close()


async def test_a_statement_writer_task_that_dies_answers_503_and_runs_again(client: TestClient) -> None:
    """A request never waits on a writer task that has ended: it gets 503 with
    Retry-After at once, /ready reports the failure, and ingest resumes."""
    writer = client.app[keys.WRITER]
    take_group = writer._take_group

    def dies_once() -> Any:
        writer._take_group = take_group
        raise RuntimeError("a bug in the loop")

    writer._take_group = dies_once
    async with asyncio.timeout(10):
        response = await client.post(URL, json=statement(statement_id=str(uuid.uuid4())), headers=xapi_headers())
    assert response.status == 503 and response.headers["Retry-After"] == "5"
    assert "storage is unavailable (WriterFailedError)" in (await response.json())["error"]
    async with client.get("/ready") as ready:
        reported = (await ready.json())["checks"]["statement_writer"]
    assert reported["restarts"] == 1 and reported["last_failure"] == "RuntimeError('a bug in the loop')"
    after = str(uuid.uuid4())
    async with asyncio.timeout(10):
        while (await client.post(URL, json=statement(statement_id=after), headers=xapi_headers())).status != 200:
            await asyncio.sleep(0.05)
    async with client.get("/ready") as ready:
        assert ready.status == 200
        assert (await ready.json())["checks"]["statement_writer"]["state"] == "running"
