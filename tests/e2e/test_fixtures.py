"""The ``client`` fixture starts where it should, cheaply: its database is a
copy of the session's migrated template (not migrated again), and its
bootstrap credential is hashed at the tests' light scrypt cost.  A
``service_factory`` service survives its picked port being taken first,
and only that."""

from __future__ import annotations

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import LIGHT_SCRYPT_N, with_database
from tests.e2e.conftest import KEY, xapi_headers


async def _fetch(url: str, query: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetch(query)
    finally:
        await conn.close()  # no session may stay on the template: CREATE DATABASE ... TEMPLATE would refuse


async def test_client_database_is_a_copy_of_the_migrated_template(
    client: TestClient, database_url: str, postgres_server: str, migrated_template: str
) -> None:
    applied = "SELECT version, applied_at FROM schema_migrations ORDER BY 1"
    assert await _fetch(database_url, applied) == await _fetch(with_database(postgres_server, migrated_template), applied)


async def test_client_bootstrap_credential_is_hashed_lightly_and_still_checked(
    client: TestClient, database_url: str
) -> None:
    [row] = await _fetch(database_url, f"SELECT secret_hash FROM credentials WHERE key = '{KEY}'")
    assert row["secret_hash"].split("$")[:2] == ["scrypt", str(LIGHT_SCRYPT_N)]
    assert (await client.get("/xapi/statements?limit=1", headers=xapi_headers())).status == 200
    assert (await client.get("/xapi/statements?limit=1", headers=xapi_headers(secret="wrong"))).status == 401


async def test_a_service_whose_picked_port_is_taken_before_it_binds_starts_on_another(
    service_factory, nats_url: str
) -> None:
    """``service_factory`` picks a free port when it makes the service; on a
    busy machine another process can take it before the child binds it."""
    import socket

    service = service_factory(nats_url, LRS_RELAY_ENABLED="false", LRS_PROJECTIONS_ENABLED="false")
    picked = service.port
    with socket.socket() as squatter:  # takes the picked port first, as a stranger would
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", picked))
        squatter.listen()
        await service.start()
    assert service.port != picked and service.base_url.endswith(f":{service.port}")
    assert "is already in use" in service.log_path.read_text()  # the first start was refused for it


async def test_a_service_that_cannot_start_for_another_reason_fails_at_once_with_its_cause(
    service_factory, nats_url: str
) -> None:
    """Only a refused port is tried again: any other failed start (here a
    setting) ends the test at the first attempt, naming the cause (not
    waited out as "not ready": that would be a TimeoutError)."""
    service = service_factory(nats_url, LRS_RELAY_ENABLED="false", LRS_PAGE_SIZE_MAX="many")
    picked = service.port
    with pytest.raises(RuntimeError, match="LRS_PAGE_SIZE_MAX") as failure:
        await service.start()
    assert type(failure.value) is RuntimeError  # not a port taken
    assert service.port == picked  # not moved
    assert service.log_path.read_text().count("LRS_PAGE_SIZE_MAX") == 1  # one start, not three
