"""Statement PUT/POST announce themselves to the group commit as they enter
their handler (lrs.store.gathering): with a gathering wait of a minute, a
burst of them is answered as soon as every one has reached the writer, and a
request refused before it reaches the writer does not hold the group."""

from __future__ import annotations

import asyncio
from pathlib import Path

from lrs.http import keys
from tests.e2e.conftest import app_client, xapi_headers
from tests.e2e.statements import new_id, statement

BOUND_S = 10.0  # only a bound for a failing test: the wait itself is a minute


async def test_a_burst_of_statement_writes_commits_without_waiting_out_the_wait(
    database_url: str, tmp_path: Path, light_secret_hashing: int
) -> None:
    # Clear: the learner keys' loader gathers first sights for the same wait.
    async with app_client(database_url, tmp_path, group_commit_wait_ms=60_000.0, seal_personal_data=False) as client:
        writer = client.server.app[keys.WRITER]
        put_id = new_id()
        posts = [client.post("/xapi/statements", json=statement(), headers=xapi_headers()) for _ in range(5)]
        put = client.put(f"/xapi/statements?statementId={put_id}", json=statement(), headers=xapi_headers())
        refused = client.post("/xapi/statements", json={"verb": "not a statement"}, headers=xapi_headers())
        responses = await asyncio.wait_for(asyncio.gather(*posts, put, refused), BOUND_S)
        assert [r.status for r in responses] == [200] * 5 + [204, 400]
        assert writer.statements_committed == 6
        assert writer.groups_committed >= 1
        assert writer.waits_ended_early == writer.groups_committed


async def test_a_connection_that_closes_after_its_answer_is_not_waited_for(
    database_url: str, tmp_path: Path, light_secret_hashing: int
) -> None:
    async with app_client(database_url, tmp_path, group_commit_wait_ms=60_000.0, seal_personal_data=False) as client:
        writer = client.server.app[keys.WRITER]
        closing = await client.post("/xapi/statements", json=statement(),
                                    headers={**xapi_headers(), "Connection": "close"})
        assert closing.status == 200 and closing.headers.get("Connection", "").lower() == "close"
        assert writer._gathering.expected_back == 0  # it will not come back on that connection
        kept = await client.post("/xapi/statements", json=statement(), headers=xapi_headers())
        assert kept.status == 200
        assert writer._gathering.expected_back == 1
        # The next write does not wait for the connection closed after its answer.
        after = await asyncio.wait_for(
            client.post("/xapi/statements", json=statement(), headers={**xapi_headers(), "Connection": "close"}),
            BOUND_S)
        assert after.status == 200 and writer.statements_committed == 3


async def test_aiohttps_connection_reads_as_closed_once_its_client_hangs_up(
    database_url: str, tmp_path: Path, light_secret_hashing: int
) -> None:
    # Guards what lrs.store.gathering.connection_closed reads of aiohttp: the
    # server's protocol (request.protocol) loses its transport with the connection.
    from lrs.store.gathering import connection_closed

    async with app_client(database_url, tmp_path, seal_personal_data=False) as client:
        writer = client.server.app[keys.WRITER]
        kept = await client.post("/xapi/statements", json=statement(), headers=xapi_headers())
        assert kept.status == 200
        [connection] = writer._gathering._answered  # the kept-alive connection, expected back
        assert not connection_closed(connection)
        await client.session.connector.close()  # the client hangs up
        for _ in range(200):
            if connection_closed(connection):
                break
            await asyncio.sleep(0.01)
        assert connection_closed(connection)
