"""No event can stop the stream: statements of 1.1 MB and near the body limit
are accepted, relayed (by reference: the messages carry no payload), projected
and forwarded, and a normal statement after them is projected promptly.

Against ``lrs serve`` with the default limits (20 MiB bodies) and a
nats-server with its default max_payload of 1 MiB, where such a statement
used to stop delivery for every tenant."""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from typing import Any

import aiohttp
import asyncpg
import nats
import pytest

from tests.e2e.conftest import KEY, SECRET, xapi_headers
from lrs.payload_codec import open_payload

pytestmark = pytest.mark.slow

COURSE = "https://lrs.example.org/courses/civil-servant-basic-digital-skills"
PASSED = "http://adlnet.gov/expapi/verbs/passed"


def passing(learner: str, module: str, display_chars: int = 0) -> dict[str, Any]:
    verb: dict[str, Any] = {"id": PASSED}
    if display_chars:
        verb["display"] = {"en-US": "p" * display_chars}
    return {
        "id": str(uuid.uuid4()),
        "actor": {"mbox": f"mailto:{learner}@example.gov.vn"},
        "verb": verb,
        "object": {"id": f"{COURSE}/modules/{module}"},
        "result": {"success": True, "score": {"scaled": 0.95}},
    }


async def post(base_url: str, body: Any, patience_s: float = 60.0) -> None:
    """POST as a client that honours load shedding: a 503 with Retry-After
    (the service ran behind on a loaded machine after parsing 20 MiB) is
    asked again after the time it names; any other answer than 200 fails."""
    deadline = time.monotonic() + patience_s
    async with aiohttp.ClientSession() as session:
        while True:
            async with session.post(base_url + "/xapi/statements", json=body, headers=xapi_headers()) as response:
                text = await response.text()
                shed = response.status == 503 and "Retry-After" in response.headers
                if not shed or time.monotonic() > deadline:
                    assert response.status == 200, (response.status, text[:300])
                    return
                await asyncio.sleep(int(response.headers["Retry-After"]))


async def projected(database_url: str, learner: str) -> bool:
    conn = await asyncpg.connect(database_url)
    try:
        return bool(await conn.fetchval(
            "SELECT count(*) FROM competency_learners WHERE learner = $1", f"mbox:mailto:{learner}@example.gov.vn"
        ))
    finally:
        await conn.close()


async def eventually(check, what: str, timeout: float) -> float:
    started = time.monotonic()
    while not await check():
        assert time.monotonic() - started < timeout, f"timed out after {timeout}s waiting for {what}"
        await asyncio.sleep(0.1)
    return time.monotonic() - started


async def test_large_statements_are_relayed_projected_and_forwarded(
    service_factory, nats_control, database_url, second_database_url, tmp_path
) -> None:
    # A store kept in clear (LRS_SEAL_PERSONAL_DATA=false): forwarded as
    # stored, no privacy key needed (sealed sources: tests/e2e/test_forward_e2e.py).
    source = service_factory(nats_control.url, LRS_SEAL_PERSONAL_DATA="false")
    await source.start()
    target = service_factory(nats_control.url, LRS_DATABASE_URL=second_database_url, LRS_RELAY_ENABLED="false",
                             LRS_PROJECTIONS_ENABLED="false")
    await target.start()

    big = passing("big", "searching", 1_100_000)  # about 1.1 MB
    huge = passing("huge", "device-security", 20 * 1024 * 1024 - 4096)  # just under the 20 MiB body limit
    await post(source.base_url, big)
    await post(source.base_url, huge)
    after = passing("after", "personal-data")
    await post(source.base_url, after)

    # Projected, the normal statement promptly.
    took = await eventually(lambda: projected(database_url, "after"), "the normal statement to be projected", 30)
    assert took < 10, took
    assert await projected(database_url, "big") and await projected(database_url, "huge")

    # Relayed, by reference.
    nc = await nats.connect(nats_control.url)
    try:
        js = nc.jetstream()
        sizes = []
        for seq in range(1, 4):
            message = await js.get_msg("LRS_EVENTS", seq=seq)
            sizes.append(message.headers.get("Lrs-Payload-Size"))
        assert sizes[0] is not None and int(sizes[0]) > 1_100_000
        assert sizes[1] is not None and int(sizes[1]) > 20 * 1024 * 1024 - 4096
        assert sizes[2] is None  # a normal statement travels inline
    finally:
        await nc.close()

    # Forwarded to another LRS.
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "lrs", "forward", "--to", target.base_url, "--key", KEY, "--secret", SECRET,
        "--nats-url", nats_control.url, "--database-url", database_url, "--until-caught-up", "--no-progress",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 240)
    assert process.returncode == 0, out.decode()[-2000:]
    conn = await asyncpg.connect(second_database_url)
    try:
        ids = {str(r["statement_id"]) for r in await conn.fetch("SELECT statement_id FROM events")}
        longest = max([len(open_payload(r["payload"])) for r in await conn.fetch("SELECT payload FROM events")])
    finally:
        await conn.close()
    assert ids == {big["id"], huge["id"], after["id"]}
    assert longest > 20 * 1024 * 1024 - 4096
