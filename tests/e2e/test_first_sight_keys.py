"""A first sight's learner key, made by the HTTP worker and stored by the
group commit (lrs.store.group_keys, docs/privacy.md): two workers naming the
same new learners at once keep one key per learner and both Statements,
readable and erased together; a kill -9 while keys are being made loses no
acknowledged Statement and leaves no key that an erasure trips on."""

from __future__ import annotations

import asyncio
import random
import uuid
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from lrs.eventlog import verify_chain
from tests.e2e.conftest import app_client, xapi_headers
from tests.e2e.history import assert_exactly_once, log_rows, read_all_statements
from tests.e2e.jetstream import wait_for_stream
from tests.e2e.statements import new_id, statement
from tests.e2e.test_erasure_api import add_eraser, as_eraser

ERASED_HOME = "https://lrs.invalid/erased"


async def key_and_event_transactions(database_url: str) -> tuple[list[asyncpg.Record], set[str]]:
    conn = await asyncpg.connect(database_url)
    try:
        keys = await conn.fetch("SELECT pseudonym, generation, wrapped IS NULL AS erased, xmin::text AS x"
                                " FROM learner_keys")
        events = {r["x"] for r in await conn.fetch("SELECT DISTINCT xmin::text AS x FROM events")}
        return keys, events
    finally:
        await conn.close()


async def test_two_workers_first_sighting_the_same_learners_at_once_keep_one_key_each(
    database_url: str, tmp_path: Path, light_secret_hashing: int
) -> None:
    async with app_client(database_url, tmp_path) as one, app_client(database_url, tmp_path) as two:
        sent: dict[str, str] = {}  # statement id -> learner
        for n in range(6):
            learner = f"race{n}@example.org"
            bodies = [statement(statement_id=new_id(), learner=learner) for _ in range(2)]
            responses = await asyncio.gather(
                one.post("/xapi/statements", json=bodies[0], headers=xapi_headers()),
                two.post("/xapi/statements", json=bodies[1], headers=xapi_headers()),
            )
            assert [r.status for r in responses] == [200, 200], [await r.text() for r in responses]
            sent.update((b["id"], learner) for b in bodies)
        keys, events = await key_and_event_transactions(database_url)
        # One live key per learner (and the authority's), each committed with a Statement.
        assert len(keys) == len({k["pseudonym"] for k in keys}) == 6 + 1
        assert {k["generation"] for k in keys} == {1} and not any(k["erased"] for k in keys)
        assert {k["x"] for k in keys} <= events
        for client in (one, two):
            for statement_id, learner in sent.items():
                response = await client.get("/xapi/statements", params={"statementId": statement_id},
                                            headers=xapi_headers())
                assert response.status == 200
                assert (await response.json())["actor"]["mbox"] == f"mailto:{learner}"

        await add_eraser(database_url, ["erase"])
        response = await one.post("/admin/erasures", json={"agent": {"mbox": "mailto:race0@example.org"},
                                                           "reason": "request 31"}, headers=as_eraser())
        assert response.status == 200, await response.text()
        assert (await response.json())["generations"] == [1]
        for client in (one, two):
            for statement_id, learner in sent.items():
                response = await client.get("/xapi/statements", params={"statementId": statement_id},
                                            headers=xapi_headers())
                actor = (await response.json())["actor"]
                if learner == "race0@example.org":
                    assert actor["account"]["homePage"] == ERASED_HOME and "mbox" not in actor
                else:
                    assert actor["mbox"] == f"mailto:{learner}"


async def _post_naming(base_url: str, shared: list[str], sent: dict[str, str], errors: list[str],
                       stop: asyncio.Event) -> None:
    """Batches of 10: five learners never named before, five of a small set
    every client names (first sights in both workers at once)."""
    async with aiohttp.ClientSession() as session:
        while not stop.is_set():
            ids = [new_id() for _ in range(10)]
            learners = [f"{sid[:8]}@example.org" for sid in ids[:5]] + random.sample(shared, 5)
            body = [statement(statement_id=sid, learner=learner) for sid, learner in zip(ids, learners)]
            try:
                async with session.post(base_url + "/xapi/statements", json=body, headers=xapi_headers()) as r:
                    if r.status == 200:
                        sent.update(zip(ids, learners))
                    else:
                        errors.append(f"{r.status}: {await r.text()}")
                        await asyncio.sleep(0.05)
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                errors.append(type(exc).__name__)
                if stop.is_set():
                    return
                await asyncio.sleep(0.05)


async def _actors(base_url: str) -> dict[str, dict]:
    return {s["id"]: s["actor"] for s in await read_all_statements(base_url, limit=500)}


@pytest.mark.slow
async def test_kill_9_while_first_sights_make_keys_loses_nothing_acknowledged_and_erasure_holds(
    service_factory, nats_control, database_url
) -> None:
    service = service_factory(nats_control.url, LRS_HTTP_WORKERS="2", LRS_PROJECTIONS_ENABLED="false")
    await service.start()
    shared = [f"shared{n}-{uuid.uuid4().hex[:6]}@example.org" for n in range(40)]
    sent: dict[str, str] = {}
    errors: list[str] = []
    stop = asyncio.Event()
    clients = [asyncio.create_task(_post_naming(service.base_url, shared, sent, errors, stop)) for _ in range(8)]
    while len(sent) < 1500:
        await asyncio.sleep(0.05)
    service.kill()
    await service.wait()
    stop.set()
    await asyncio.gather(*clients)

    await service.start()
    rows = await log_rows(database_url)
    assert verify_chain(rows) is None
    streamed = await wait_for_stream(nats_control.url, len(rows))
    assert_exactly_once(list(sent), rows, streamed)
    # Every acknowledged Statement opens to its learner; every key is one learner's only key.
    actors = await _actors(service.base_url)
    assert all(actors[sid]["mbox"] == f"mailto:{learner}" for sid, learner in sent.items())
    keys, _ = await key_and_event_transactions(database_url)
    assert len(keys) == len({k["pseudonym"] for k in keys})

    # Erasing a learner first seen around the kill works, and takes only hers.
    await add_eraser(database_url, ["erase"])
    last = list(sent.items())[-1][1]
    async with aiohttp.ClientSession() as session:
        async with session.post(service.base_url + "/admin/erasures", headers=as_eraser(),
                                json={"agent": {"mbox": f"mailto:{last}"}, "reason": "request 32"}) as response:
            assert response.status == 200, await response.text()
    actors = await _actors(service.base_url)
    for sid, learner in sent.items():
        if learner == last:
            assert actors[sid]["account"]["homePage"] == ERASED_HOME
        else:
            assert actors[sid]["mbox"] == f"mailto:{learner}"
    await service.stop()


async def test_a_worker_hears_the_keys_the_other_made_and_seals_under_them(
    database_url: str, tmp_path: Path, light_secret_hashing: int
) -> None:
    from lrs.http import keys as app_keys

    async with app_client(database_url, tmp_path) as one, app_client(database_url, tmp_path) as two:
        response = await one.post("/xapi/statements", headers=xapi_headers(),
                                  json=statement(statement_id=new_id(), learner="heard@example.org"))
        assert response.status == 200
        keyring = two.server.app[app_keys.LEARNER_KEYS]
        pseudonym = keyring.pseudonym("default", "mbox:mailto:heard@example.org")
        deadline = asyncio.get_running_loop().time() + 5
        while keyring.cached("default", pseudonym) is None:  # announced at the group's COMMIT
            assert asyncio.get_running_loop().time() < deadline, "the other worker's key was not heard"
            await asyncio.sleep(0.02)
        body = statement(statement_id=new_id(), learner="heard@example.org")
        sealed = await keyring.seal_statements("default", [body], {"mbox": "mailto:authority@example.org"},
                                               make_keys=True)
        assert pseudonym not in sealed.new_keys  # sealed under the heard key: no refusal to come
        response = await two.post("/xapi/statements", json=body, headers=xapi_headers())
        assert response.status == 200
        keys, _ = await key_and_event_transactions(database_url)
        assert [k["generation"] for k in keys if k["pseudonym"] == pseudonym] == [1]
