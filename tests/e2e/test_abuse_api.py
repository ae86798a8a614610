"""Abuse and overload through HTTP: failed-login throttling, revocation reaching
every instance, load shedding, and a rate limit shared by instances on one database.

Two app instances on one database stand for two worker processes: each has
its own caches, counters and event loop state, and they share only PostgreSQL,
as ``LRS_HTTP_WORKERS`` processes do.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from typing import AsyncIterator

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from lrs import auth
from lrs.auth import hash_secret
from lrs.config import Settings
from lrs.http import keys
from lrs.service import create_app
from lrs.http.shedding import ADMISSION
from lrs.http.throttle import AUTH_THROTTLE
from lrs.store.credentials import insert_credential, revoke_credential
from tests.e2e.conftest import KEY, SECRET, xapi_headers
from tests.e2e.statements import new_id, statement

URL = "/xapi/statements"


@pytest.fixture
def instance(database_url: str):
    @contextlib.asynccontextmanager
    async def make(**settings) -> AsyncIterator[TestClient]:
        # Several instances share this test's event loop: one starting (a
        # synchronous scrypt) makes the others' loop late, so the lag budget
        # is off unless a test sets it.
        settings.setdefault("shed_loop_lag_ms", 0)
        config = Settings(database_url=database_url, nats_url=None, relay_enabled=False,
                          projections_enabled=False, bootstrap_credential=f"{KEY}:{SECRET}", **settings)
        app = create_app(config, database_url=database_url, nats_url=None)
        async with TestServer(app) as server, TestClient(server) as client:
            yield client

    return make


@pytest.fixture
def slow_checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records every run of the slow scrypt check (the real one still runs)."""
    calls: list[str] = []
    real = auth.verify_secret

    def counting(secret: str, stored_hash: str | None) -> bool:
        calls.append(secret)
        return real(secret, stored_hash)

    monkeypatch.setattr("lrs.http.authn.verify_secret", counting)
    return calls


async def _status(client: TestClient, key: str = KEY, secret: str = SECRET) -> int:
    response = await client.get(f"{URL}?limit=1", headers=xapi_headers(key=key, secret=secret))
    await response.read()
    return response.status


# -- failed authentication ------------------------------------------------------


async def test_failed_logins_for_a_key_are_throttled_before_the_slow_hash(instance, slow_checks):
    async with instance(auth_failures_per_key=3, auth_failures_per_address=100) as client:
        assert await _status(client) == 200  # the owner, verified and cached
        assert [await _status(client, secret=f"wrong-{i}") for i in range(3)] == [401, 401, 401]
        checks = len(slow_checks)
        response = await client.get(URL, headers=xapi_headers(secret="wrong-4"))
        assert response.status == 429
        assert 1 <= int(response.headers["Retry-After"]) <= 60
        problem = await response.json()
        assert KEY in problem["error"] and "failed authentications" in problem["error"]
        assert len(slow_checks) == checks  # refused before scrypt ran
        # The owner's verified secret is still served from the cache.
        assert await _status(client) == 200
        # Another key is not affected.
        await insert_credential(client.app[keys.POOL], key="other", secret_hash=hash_secret("other-secret"),
                                tenant="default", scopes=["all"])
        assert await _status(client, key="other", secret="other-secret") == 200


async def test_failed_logins_from_one_address_are_throttled_whatever_the_key(instance, slow_checks):
    async with instance(auth_failures_per_key=100, auth_failures_per_address=4) as client:
        statuses = [await _status(client, key=f"guess-{i}", secret="x") for i in range(4)]
        assert statuses == [401] * 4
        checks = len(slow_checks)
        response = await client.get(URL, headers=xapi_headers(key="guess-5", secret="x"))
        assert response.status == 429 and int(response.headers["Retry-After"]) >= 1
        assert "client address" in (await response.json())["error"]
        assert len(slow_checks) == checks


async def test_concurrent_requests_with_one_secret_share_one_check_counted_once(instance, slow_checks):
    async with instance(auth_failures_per_key=2, auth_failures_per_address=2) as client:
        statuses = await asyncio.gather(*(_status(client) for _ in range(12)))
        assert statuses == [200] * 12
        assert len(slow_checks) == 1
        statuses = await asyncio.gather(*(_status(client, secret="wrong") for _ in range(12)))
        assert statuses == [401] * 12  # one wrong secret, one hash, one failure
        assert len(slow_checks) == 2


async def test_concurrent_failures_cannot_slip_past_the_limit(instance, slow_checks):
    async with instance(auth_failures_per_key=5, auth_failures_per_address=1000) as client:
        statuses = await asyncio.gather(*(_status(client, secret=f"wrong-{i}") for i in range(30)))
        assert statuses.count(401) == 5 and statuses.count(429) == 25
        assert len(slow_checks) == 5


async def test_failures_split_across_instances_throttle_the_key(instance, slow_checks):
    async with instance(auth_failures_per_key=4, auth_failures_per_address=100) as first, \
            instance(auth_failures_per_key=4, auth_failures_per_address=100) as second:
        statuses = [await _status(client, secret=f"wrong-{i}") for i, client in enumerate((first, second) * 2)]
        assert statuses == [401] * 4  # two failures in each process, four in all
        checks = len(slow_checks)
        for client in (first, second):
            response = await client.get(URL, headers=xapi_headers(secret="wrong-again"))
            assert response.status == 429 and 1 <= int(response.headers["Retry-After"]) <= 60
            assert KEY in (await response.json())["error"]
        assert len(slow_checks) == checks  # neither process ran the hash for a throttled attempt


async def test_a_throttled_name_costs_no_database_round_trip(instance, slow_checks):
    async with instance(auth_failures_per_key=100, auth_failures_per_address=2) as first, \
            instance(auth_failures_per_key=100, auth_failures_per_address=2) as second:
        assert [await _status(first, key="guess-1"), await _status(second, key="guess-2")] == [401, 401]
        throttle = second.app[AUTH_THROTTLE]
        calls: list[str] = []
        real = throttle.shared

        async def counting_admit(limits):
            calls.append("admit")
            return await real.admit(limits)

        throttle.shared = dataclasses.replace(real, admit=counting_admit)
        # The first refusal in this process asks the shared counts once; the rest are refused locally.
        statuses = [await _status(second, key=f"guess-{i}") for i in range(3, 23)]
        assert statuses == [429] * 20
        assert calls == ["admit"]
        assert len(slow_checks) == 2


async def test_a_trusted_proxy_names_the_client_and_others_cannot(instance):
    async with instance(auth_failures_per_key=100, auth_failures_per_address=2,
                        trusted_proxies="127.0.0.0/8, ::1") as behind_proxy, \
            instance(auth_failures_per_key=100, auth_failures_per_address=2) as direct:

        async def as_client(client: TestClient, forwarded: str, key: str) -> int:
            headers = {**xapi_headers(key=key, secret="x"), "X-Forwarded-For": forwarded}
            response = await client.get(URL, headers=headers)
            await response.read()
            return response.status

        # Behind the proxy, each client's address has its own limit.
        assert [await as_client(behind_proxy, "198.51.100.7", f"a{i}") for i in range(3)] == [401, 401, 429]
        assert await as_client(behind_proxy, "198.51.100.8, 127.0.0.1", "b") == 401
        # A client talking directly cannot escape its limit by naming another address.
        statuses = [await as_client(direct, f"203.0.113.{i}", f"c{i}") for i in range(3)]
        assert statuses == [401, 401, 429]


# -- revocation -------------------------------------------------------------------


async def test_revocation_takes_effect_in_every_instance_by_its_notice_not_the_cache_ttl(instance, database_url):
    # Within milliseconds on a quiet machine (docs/operations.md, "Revocation"); the
    # bound here is what a loaded CI machine needs, still a sixth of the cache's TTL,
    # so only the notice can have ended the cached verification.
    bound_s = 10.0
    async with instance(credential_cache_ttl_s=60.0) as first, instance(credential_cache_ttl_s=60.0) as second:
        await insert_credential(first.app[keys.POOL], key="doomed", secret_hash=hash_secret("doomed-secret"),
                                tenant="default", scopes=["all"])
        for client in (first, second):  # both have verified (and cached) the secret
            assert await _status(client, "doomed", "doomed-secret") == 200
            assert client.app[keys.AUTHENTICATOR].cached("doomed", "doomed-secret") is not None
        conn = await asyncpg.connect(database_url)  # as `lrs credentials revoke` does, from outside
        try:
            assert await revoke_credential(conn, "doomed")
        finally:
            await conn.close()
        revoked_at = time.monotonic()
        pending = {0, 1}
        while pending and time.monotonic() - revoked_at < bound_s:
            for index in sorted(pending):
                if await _status((first, second)[index], "doomed", "doomed-secret") == 401:
                    pending.discard(index)
            await asyncio.sleep(0.02)
        assert not pending, f"instances {pending} still accept the revoked key after {bound_s} s"
        assert await _status(first) == 200  # other keys unaffected


# -- load shedding ---------------------------------------------------------------------


async def test_a_full_commit_queue_sheds_new_requests_and_finishes_accepted_ones(instance, database_url):
    async with instance(shed_queue_statements=1, shed_loop_lag_ms=0) as client:
        writer = client.app[keys.WRITER]
        blocker = await asyncpg.connect(database_url)
        try:
            # Hold the log head: the next group commit waits for it.
            tx = blocker.transaction()
            await tx.start()
            await blocker.execute("SELECT 1 FROM log_head FOR UPDATE")
            accepted = asyncio.ensure_future(client.post(URL, json=[statement(), statement()], headers=xapi_headers()))
            while writer.pending_statements < 2:
                await asyncio.sleep(0.01)
            # Answered while the head is held: at once, not queued (a queued one has no
            # answer before the rollback below; the bound only ends a failing test).
            response = await asyncio.wait_for(client.post(URL, json=statement(), headers=xapi_headers()), 30)
            assert response.status == 503
            assert response.headers["Retry-After"] == "1"
            assert "LRS_SHED_QUEUE_STATEMENTS" in (await response.json())["error"]
            assert (await client.get("/health")).status == 200  # probes are never shed
            assert not accepted.done()
            await tx.rollback()
        finally:
            await blocker.close()
        response = await accepted
        assert response.status == 200 and len(await response.json()) == 2
        assert writer.pending_statements == 0
        assert (await client.post(URL, json=statement(), headers=xapi_headers())).status == 200


async def test_a_cap_on_requests_in_flight_sheds_the_next_one(instance, database_url):
    async with instance(shed_max_in_flight=1, shed_queue_statements=0) as client:
        writer = client.app[keys.WRITER]
        blocker = await asyncpg.connect(database_url)
        try:
            tx = blocker.transaction()
            await tx.start()
            await blocker.execute("SELECT 1 FROM log_head FOR UPDATE")
            accepted = asyncio.ensure_future(client.post(URL, json=statement(), headers=xapi_headers()))
            while writer.pending_statements < 1:
                await asyncio.sleep(0.01)
            response = await client.get(URL, headers=xapi_headers())
            assert response.status == 503 and response.headers["Retry-After"] == "1"
            assert "LRS_SHED_MAX_IN_FLIGHT=1" in (await response.json())["error"]
            await tx.rollback()
        finally:
            await blocker.close()
        assert (await accepted).status == 200
        assert await _status(client) == 200


async def test_a_burst_beyond_the_adaptive_limit_is_shed_and_every_accepted_statement_is_stored(
    instance, database_url, slow_checks
):
    async with instance(shed_latency_ms=250, shed_min_in_flight=2, shed_queue_statements=0) as client:
        limit = client.app[ADMISSION].limit
        assert limit is not None and limit.limit == 8  # starts at 4 × the minimum
        writer = client.app[keys.WRITER]
        blocker = await asyncpg.connect(database_url)
        ids = [new_id() for _ in range(30)]
        try:
            # Hold the log head: every accepted statement waits for its commit.
            tx = blocker.transaction()
            await tx.start()
            await blocker.execute("SELECT 1 FROM log_head FOR UPDATE")
            burst = [asyncio.ensure_future(client.post(URL, json=statement(statement_id=i), headers=xapi_headers()))
                     for i in ids]
            # The limit's worth wait at the held head; the others are answered meanwhile,
            # at once, not queued (a queued one has no answer before the rollback). The
            # bound only ends a failing test: answers race the writer's queue, and a
            # loaded machine takes longer than a quiet one for 30 requests.
            loop = asyncio.get_running_loop()
            give_up = loop.time() + 30
            while writer.pending_statements < limit.limit or sum(f.done() for f in burst) < len(ids) - limit.limit:
                assert loop.time() < give_up, (writer.pending_statements, sum(f.done() for f in burst))
                await asyncio.sleep(0.01)
            refused = [(i, f) for i, f in zip(ids, burst) if f.done()]
            assert refused and all(f.result().status == 503 for _, f in refused)
            for _, response in refused:
                assert int(response.result().headers["Retry-After"]) >= 1
                assert "LRS_SHED_LATENCY_MS=250" in (await response.result().json())["error"]
            assert len(refused) == len(ids) - writer.pending_statements
            checks = len(slow_checks)
            response = await client.post(URL, json=statement(), headers=xapi_headers(secret="never-checked"))
            assert response.status == 503
            assert len(slow_checks) == checks  # refused before the credentials were checked
            for probe in ("/health", "/ready", "/metrics"):  # never shed
                assert (await client.get(probe, headers=xapi_headers())).status == 200
            await tx.rollback()
        finally:
            await blocker.close()
        statuses = {i: (await f).status for i, f in zip(ids, burst)}
        accepted = [i for i, status in statuses.items() if status == 200]
        assert set(statuses.values()) == {200, 503} and len(accepted) == len(ids) - len(refused)
        for statement_id, status in statuses.items():  # every 200 is stored, no 503 is
            response = await client.get(f"{URL}?statementId={statement_id}", headers=xapi_headers())
            assert response.status == (200 if status == 200 else 404), statement_id
        metrics = await (await client.get("/metrics", headers=xapi_headers())).text()
        assert 'lrs_shed_total{reason="limit"}' in metrics and "lrs_shed_concurrency_limit " in metrics


async def test_a_late_event_loop_sheds_new_requests(instance):
    async with instance(shed_loop_lag_ms=100) as client:
        assert await _status(client) == 200
        time.sleep(0.3)  # one stall alone sheds nothing
        assert await _status(client) == 200

        async def overloaded() -> None:  # late tick after tick, as under more work than the CPU takes
            for _ in range(8):
                time.sleep(0.15)
                await asyncio.sleep(0)

        load = asyncio.ensure_future(overloaded())
        await asyncio.sleep(0.05)
        while client.app[ADMISSION].loop_lag.lag_s <= 0.1 and not load.done():
            await asyncio.sleep(0)
        response = await client.get(URL, headers=xapi_headers())
        assert response.status == 503 and response.headers["Retry-After"] == "1"
        assert "LRS_SHED_LOOP_LAG_MS" in (await response.json())["error"]
        await load
        await asyncio.sleep(0.2)  # caught up: served again
        assert await _status(client) == 200


# -- rate limit across instances ---------------------------------------------------------


async def test_the_rate_limit_holds_across_instances(instance):
    async with instance(rate_limit_per_s=0.01, rate_limit_burst=3) as first, \
            instance(rate_limit_per_s=0.01, rate_limit_burst=3) as second:
        assert [await _status(first), await _status(second), await _status(first)] == [200, 200, 200]
        for client in (second, first):
            response = await client.get(URL, headers=xapi_headers())
            assert response.status == 429 and int(response.headers["Retry-After"]) >= 1
            assert "across all processes" in (await response.json())["error"]
