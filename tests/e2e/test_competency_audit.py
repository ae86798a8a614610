"""A real ``lrs serve`` (relay + JetStream projection) against audits from the log.

A randomised stream of statements (timestamps out of order, statements
posted again, voidings of earlier ones, several learners in several units)
goes through HTTP; the service is killed with SIGKILL mid-stream and started
again.  Afterwards the live projection's digest equals the digest of a
rebuild from zero (``lrs replay``), and ``lrs audit verify`` finds the
chain intact.  With two HTTP workers the projection runs in its own
``lrs project`` process beside them."""

from __future__ import annotations

import asyncio
import os
import random
import sys
from typing import Any

import aiohttp
import pytest

from tests.e2e.conftest import xapi_headers
from tests.e2e.test_competency_api import CERTIFYING, PROGRAM, course_statement, roster, voiding
from tests.integration.competency_statements import FAILED

pytestmark = pytest.mark.slow


async def lrs(database_url: str, *args: str) -> tuple[int, str]:
    env = {**os.environ, "LRS_DATABASE_URL": database_url, "LRS_LOG_LEVEL": "warning"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "lrs", *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode is not None
    return process.returncode, out.decode() + err.decode()


async def digest_of(database_url: str) -> tuple[str, int]:
    code, output = await lrs(database_url, "audit", "digest", "competency")
    assert code == 0, output
    _, value, _, position = output.strip().splitlines()[-1].split()
    return value, int(position)


async def post(session: aiohttp.ClientSession, base: str, bodies: list[dict[str, Any]]) -> None:
    async with session.post(f"{base}/xapi/statements", json=bodies, headers=xapi_headers()) as response:
        assert response.status == 200, await response.text()


async def wait_caught_up(session: aiohttp.ClientSession, base: str, head: int) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + 60
    while True:
        async with session.get(f"{base}/competency/units/mic/summary", params={"program": PROGRAM}, headers=xapi_headers()) as r:
            assert r.status == 200, await r.text()
            summary = await r.json()
        if summary["position"] >= head:
            return summary
        assert asyncio.get_running_loop().time() < deadline, f"projection stuck at {summary['position']} < {head}"
        await asyncio.sleep(0.1)


@pytest.mark.parametrize("workers", ["1", "2"])
async def test_kill_mid_stream_then_live_digest_equals_rebuild(
    database_url: str, nats_control: Any, service_factory: Any, workers: str
) -> None:
    rng = random.Random(2024)
    service = service_factory(nats_control.url, LRS_PROJECTIONS_ENABLED="true", LRS_HTTP_WORKERS=workers)
    await service.start()
    base = service.base_url
    units = {"mic-dt-1": [0, 1, 2], "mic-dt-2": [3, 4], "moh": [5, 6]}
    stream: list[dict[str, Any]] = []
    for n in range(7):
        modules = CERTIFYING if n % 2 == 0 else rng.sample(CERTIFYING, 6) + [("troubleshooting", FAILED)]
        stream.extend(course_statement(n, m, v, rng.randrange(5000), rng.choice([0.6, 0.85, 0.95])) for m, v in modules)
    rng.shuffle(stream)  # timestamps out of order
    batches = [stream[i : i + 7] for i in range(0, len(stream), 7)]
    for batch in rng.sample(batches, 4):  # voidings, sometimes in the same request as their target
        batch.append(voiding(rng.choice(batch)["id"]))
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{base}/competency/admin/roster", json=roster(units), headers=xapi_headers()) as r:
            assert r.status == 200, await r.text()
        half = len(batches) // 2
        for i, batch in enumerate(batches[:half]):
            await post(session, base, batch)
            if i % 3 == 0:
                await post(session, base, batch)  # the same statements again: no new events
        service.kill()  # the projector dies with whatever it had in flight
        await service.wait()
        await service.start()
        for batch in batches[half:]:
            await post(session, base, batch)
        await post(session, base, [voiding(stream[0]["id"])])
        code, output = await lrs(database_url, "audit", "verify", "--no-record")
        assert code == 0, output
        head = int(output.split()[-1])
        assert head == len(stream) + 5 + 1  # every statement once, five voidings, the roster load
        summary = await wait_caught_up(session, base, head)
        assert summary["headcount"] == 5
    await service.stop()

    live, live_position = await digest_of(database_url)
    assert live_position == head
    code, output = await lrs(database_url, "replay", "competency")
    assert code == 0, output
    assert output.strip().splitlines()[-1] == f"replayed competency through position {head}; digest {live}"
    assert await digest_of(database_url) == (live, head)
