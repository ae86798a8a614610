"""The roster is audited: its changes are events of the hash-chained log, a
retroactive rewrite is visible there and in the memberships' history, `as_of`
sees the roster as it was known then, the digest covers it, and a replay
reproduces the live answers before and after the rewrite."""

from __future__ import annotations

import pytest

import asyncio
from datetime import datetime, timezone
from typing import Any

import asyncpg
import msgspec

from lrs.commands.audit import verify_log
from projections.competency.catalog import load_catalog
from projections.competency.store import CompetencyProjection, digest
from projections.replay import replay
from tests.e2e.conftest import xapi_headers
from tests.e2e.test_competency_api import CERTIFYING, PROGRAM, _iso, caught_up, get_json, post, roster
from tests.integration.competency_statements import course_statement, learner_key
from lrs.payload_codec import open_payload


async def summaries(client: Any, *moments: datetime, clock: str = "known") -> list[tuple[Any, ...]]:
    """(headcount, certified, rate) now and at each moment, for the ministry and a division."""
    found = []
    for unit in ("mic", "mic-dt-1"):
        for moment in (None, *moments):
            params = {"program": PROGRAM} if moment is None else {"program": PROGRAM, "as_of": _iso(moment), "clock": clock}
            answer = await get_json(client, f"/competency/units/{unit}/summary", **params)
            found.append((unit, moment, answer["headcount"], answer["certified"], answer["rate"]))
    return found



@pytest.fixture
async def client(clear_client: Any) -> Any:
    """In clear: the answers and messages below name learners by their clear
    keys; with sealing on they name the pseudonym keys (docs/privacy.md)."""
    return clear_client

async def test_a_retroactive_rewrite_is_in_the_log_and_replay_reproduces_the_answers(client: Any, database_url: str) -> None:
    response = await client.post("/competency/admin/roster", json=roster({"mic-dt-1": [1, 2, 3, 4, 5, 6]}), headers=xapi_headers())
    assert response.status == 200, await response.text()
    first_load = (await response.json())["position"]
    await post(client, *(course_statement(n, m, v, i) for n in (1, 2) for i, (m, v) in enumerate(CERTIFYING)))
    before = await caught_up(client, database_url)
    assert (before["headcount"], before["certified"]) == (6, 2)
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
    try:
        digest_before = await digest(pool)
        known_before = datetime.now(timezone.utc)
        await asyncio.sleep(0.01)

        # End the four uncertified members retroactively, as if they had left in mid-2024.
        rewrite = {"memberships": [
            {"learner": learner_key(n), "unit": "mic-dt-1", "valid_from": "2024-01-01", "valid_to": "2024-06-01"}
            for n in (3, 4, 5, 6)
        ]}
        response = await client.post("/competency/admin/roster", json=rewrite, headers=xapi_headers())
        assert response.status == 200, await response.text()
        rewritten_at = (await response.json())["position"]
        after = await caught_up(client, database_url)
        assert (after["headcount"], after["certified"], after["rate"]) == (2, 2, 1.0)

        # The rewrite is an event of the chained log, and the chain verifies.
        events = await pool.fetch("SELECT position, payload FROM events WHERE event_type = 'roster' ORDER BY position")
        assert [e["position"] for e in events] == [first_load, rewritten_at]
        recorded = msgspec.json.decode(open_payload(events[-1]["payload"]))
        assert {(x["learner"], x["valid_to"]) for x in recorded["memberships"]} == {
            (learner_key(n), "2024-06-01T00:00:00.000000Z") for n in (3, 4, 5, 6)}
        bad, checked = await verify_log(pool, 100)
        assert bad is None and checked >= rewritten_at

        # Nothing was erased: the open memberships are superseded by the rewrite.
        history = await get_json(client, "/competency/admin/memberships", learner=learner_key(3), history="true")
        assert [(m["valid_to"], m["recorded_position"], m["superseded_position"]) for m in history["memberships"]] == [
            (None, first_load, rewritten_at), ("2024-06-01T00:00:00+00:00", rewritten_at, None)]
        current = await get_json(client, "/competency/admin/memberships", learner=learner_key(3))
        assert [m["valid_to"] for m in current["memberships"]] == ["2024-06-01T00:00:00+00:00"]

        # as_of sees the roster as the LRS knew it then; now, the rewrite.
        live = await summaries(client, known_before, datetime.now(timezone.utc))
        assert [row[2:4] for row in live] == [(2, 2), (6, 2), (2, 2)] * 2
        # on the achieved clock the roster is the one recorded now, corrected history included
        achieved = await summaries(client, known_before, clock="achieved")
        assert [row[2:4] for row in achieved] == [(2, 2), (2, 2)] * 2
        digest_after = await digest(pool)
        assert digest_after != digest_before  # the digest covers the roster

        # A replay rebuilds the roster from the log and gives the same answers.
        await pool.execute("DELETE FROM roster_memberships WHERE learner = $1", learner_key(1))  # damage
        assert await digest(pool) != digest_after
        await replay(pool, CompetencyProjection(load_catalog()))
        assert await digest(pool) == digest_after
        replayed = await summaries(client, known_before)
        assert [row[2:] for row in replayed] == [row[2:] for row in live if row[1] is None or row[1] == known_before]
    finally:
        await pool.close()
