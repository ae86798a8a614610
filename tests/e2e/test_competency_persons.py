"""One official, several accounts: linked identifiers are events of the log,
evidence from all of them counts for the person, the learner API and the
Agents resource answer for any of them, conflicts are refused, and a replay
gives the same state."""

from __future__ import annotations

import pytest

import json
from typing import Any
from urllib.parse import quote

import asyncpg

from projections.competency.catalog import load_catalog
from projections.competency.store import CompetencyProjection, digest
from projections.replay import replay
from tests.e2e.conftest import xapi_headers
from tests.e2e.test_competency_api import CERTIFYING, caught_up, get_json, post, roster
from tests.integration.competency_statements import course_statement, learner_key
from lrs.payload_codec import open_payload

MOBIEDU = {"homePage": "https://mobiedu.example.vn", "name": "cs1-m"}
MOBIEDU_KEY = f"account:{MOBIEDU['homePage']}|{MOBIEDU['name']}"


def on_mobiedu(body: dict[str, Any]) -> dict[str, Any]:
    return {**body, "actor": {"account": MOBIEDU}}


async def link(client: Any, op: str, person: str, *identifiers: str, status: int = 200) -> dict[str, Any]:
    response = await client.post("/competency/admin/identities", json={"op": op, "person": person, "identifiers": list(identifiers)},
                                 headers=xapi_headers())
    assert response.status == status, await response.text()
    return await response.json()



@pytest.fixture
async def client(clear_client: Any) -> Any:
    """In clear: the answers and messages below name learners by their clear
    keys; with sealing on they name the pseudonym keys (docs/privacy.md)."""
    return clear_client

async def test_linked_accounts_count_for_one_person_and_replay_agrees(client: Any, database_url: str) -> None:
    assert (await client.post("/competency/admin/roster", json=roster({"mic-dt-1": [1, 2]}), headers=xapi_headers())).status == 200
    national = [course_statement(1, m, v, i) for i, (m, v) in enumerate(CERTIFYING[:5])]
    mobile = [on_mobiedu(course_statement(1, m, v, 10 + i)) for i, (m, v) in enumerate(CERTIFYING[5:])]
    await post(client, *national, *mobile)
    before = await caught_up(client, database_url)
    assert (before["headcount"], before["certified"]) == (2, 0)  # split over two accounts: not certified

    linked = await link(client, "link", learner_key(1), MOBIEDU_KEY)
    assert linked["changed"] == [MOBIEDU_KEY] and linked["identifiers"] == [learner_key(1), MOBIEDU_KEY]
    after = await caught_up(client, database_url)
    assert (after["headcount"], after["certified"]) == (2, 1)
    again = await link(client, "link", learner_key(1), MOBIEDU_KEY)  # nothing to do: no event
    assert again["changed"] == [] and "position" not in again

    by_account = await get_json(client, f"/competency/learners/{quote(MOBIEDU_KEY, safe='')}")
    assert (by_account["person"], by_account["merged"]) == (learner_key(1), [MOBIEDU_KEY])
    assert by_account["identifiers"] == [learner_key(1), MOBIEDU_KEY]
    (certification,) = by_account["certifications"]
    assert certification["earned"] and set(certification["statement_ids"]) & {s["id"] for s in mobile}
    by_person = await get_json(client, f"/competency/learners/{quote(learner_key(1), safe='')}")
    assert by_person["certifications"] == by_account["certifications"]

    # a later statement from the account goes straight to the person
    late = on_mobiedu(course_statement(1, "troubleshooting", "http://adlnet.gov/expapi/verbs/passed", 500, score=1.0))
    await post(client, late)
    await caught_up(client, database_url)
    trail = await get_json(client, f"/competency/learners/{quote(learner_key(1), safe='')}/trail",
                           competency="https://lrs.example.org/competency/vn-tt02-2025/1.0/competences/5.1")
    assert late["id"] in {e["statement_id"] for e in trail["evidence"]}

    # the Agents resource returns the Person with every linked identifier
    response = await client.get("/xapi/agents", params={"agent": json.dumps({"account": MOBIEDU})}, headers=xapi_headers())
    assert response.status == 200
    person = await response.json()
    assert person["objectType"] == "Person"
    assert person["account"] == [MOBIEDU] and person["mbox"] == ["mailto:cs1@example.gov.vn"]

    # conflicts are refused, naming the identifier
    taken = await link(client, "link", learner_key(2), MOBIEDU_KEY, status=409)
    assert f"{MOBIEDU_KEY} is already linked to the person {learner_key(1)}" in taken["error"]
    nested = await link(client, "link", learner_key(2), learner_key(1), status=409)
    assert "is a person with identifiers of its own" in nested["error"]
    stray = await link(client, "unlink", learner_key(2), MOBIEDU_KEY, status=409)
    assert "is not linked to" in stray["error"]
    bad = await link(client, "link", learner_key(2), "cs1@example.gov.vn", status=400)
    assert bad["path"] == "$.identifiers[0]"

    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
    try:
        events = await pool.fetch("SELECT payload FROM events WHERE event_type = 'identity' ORDER BY position")
        assert [json.loads(open_payload(e["payload"]))["op"] for e in events] == ["link"]
        live = await digest(pool)
        await replay(pool, CompetencyProjection(load_catalog()))
        assert await digest(pool) == live

        # unlinking gives the account's statements back to it
        await link(client, "unlink", learner_key(1), MOBIEDU_KEY)
        unlinked = await caught_up(client, database_url)
        assert (unlinked["headcount"], unlinked["certified"]) == (2, 0)
        alone = await get_json(client, f"/competency/learners/{quote(MOBIEDU_KEY, safe='')}")
        assert (alone["person"], alone["merged"]) == (MOBIEDU_KEY, [])
        assert alone["status"] == "known" and [c["earned"] for c in alone["certifications"]] == [False]
        person_now = await get_json(client, f"/competency/learners/{quote(learner_key(1), safe='')}")
        assert [c["earned"] for c in person_now["certifications"]] == [False]
        live = await digest(pool)
        await replay(pool, CompetencyProjection(load_catalog()))
        assert await digest(pool) == live
    finally:
        await pool.close()


async def test_two_persons_of_the_roster_are_never_linked_and_a_linked_identifier_is_never_rostered(
    client: Any, database_url: str
) -> None:
    """One account claimed by two persons: learner 2 is a person of the roster,
    so linking it to learner 1 would move its evidence out of its own unit's
    counts while it stays in the headcount; rostering an identifier already
    linked to a person would do the same the other way round."""
    assert (await client.post("/competency/admin/roster", json=roster({"mic-dt-1": [1, 2]}), headers=xapi_headers())).status == 200
    refused = await link(client, "link", learner_key(1), MOBIEDU_KEY, learner_key(2), status=409)
    assert refused["path"] == "$.identifiers"
    assert f"{learner_key(2)} is a person the roster names" in refused["error"]
    assert (await link(client, "link", learner_key(1), MOBIEDU_KEY))["changed"] == [MOBIEDU_KEY]  # nothing of the refused one

    rostering_the_account = {"memberships": [{"learner": MOBIEDU_KEY, "unit": "mic-dt-1", "valid_from": "2026-01-01"}]}
    response = await client.post("/competency/admin/roster", json=rostering_the_account, headers=xapi_headers())
    body = await response.json()
    assert response.status == 400, body
    assert body["problems"] == [
        f"memberships[0] {MOBIEDU_KEY}: is linked to the person {learner_key(1)} as an identifier; "
        "roster that person, or unlink it first"
    ]
    memberships = await get_json(client, f"/competency/admin/memberships?learner={quote(MOBIEDU_KEY, safe='')}")
    assert memberships["memberships"] == []
