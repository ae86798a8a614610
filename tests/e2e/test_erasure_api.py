"""POST /admin/erasures (scope ``erase``) and the refusals of an erasure
(docs/privacy.md), on the in-process service and real PostgreSQL."""

from __future__ import annotations

import json
import urllib.parse
import uuid
from pathlib import Path

import asyncpg

from lrs.auth import hash_secret
from lrs.store.credentials import insert_credential
from tests.e2e.conftest import app_client, basic_auth, xapi_headers
from lrs.payload_codec import open_payload

LAN = {"mbox": "mailto:lan@example.org", "name": "Lan"}
ERASER, ERASER_SECRET = "eraser", "eraser-secret-value"


def statement(actor: dict) -> dict:
    return {"id": str(uuid.uuid4()), "actor": actor, "verb": {"id": "http://adlnet.gov/expapi/verbs/passed"},
            "object": {"id": "https://lms.example/course"}}


async def add_eraser(database_url: str, scopes: list[str]) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await insert_credential(conn, key=ERASER, secret_hash=hash_secret(ERASER_SECRET), tenant="default", scopes=scopes)
    finally:
        await conn.close()


def as_eraser() -> dict[str, str]:
    return {"Authorization": basic_auth(ERASER, ERASER_SECRET)}


async def test_the_admin_route_erases_with_the_erase_scope_only(sealed_client, database_url: str) -> None:
    response = await sealed_client.post("/xapi/statements", json=[statement(LAN), statement(LAN)], headers=xapi_headers())
    assert response.status == 200
    body = {"agent": {"mbox": LAN["mbox"]}, "reason": "request 2026-117"}
    # The bootstrap credential holds "all", which does not include "erase".
    response = await sealed_client.post("/admin/erasures", json=body, headers=xapi_headers())
    assert response.status == 403
    assert "it needs scope erase" in (await response.json())["error"]  # the refusal says what to ask for
    await add_eraser(database_url, ["erase"])
    response = await sealed_client.post(
        "/admin/erasures", json={**body, "reason": "asked by lan@example.org"}, headers=as_eraser())
    assert response.status == 400 and "names the learner" in (await response.json())["error"]
    response = await sealed_client.post("/admin/erasures", json={"agent": {"mbox": "not-a-mailto"}, "reason": "x"},
                                        headers=as_eraser())
    assert response.status == 400
    response = await sealed_client.post("/admin/erasures", json=body, headers=as_eraser())
    assert response.status == 200, await response.text()
    erasure = await response.json()
    assert erasure["generations"] == [1] and len(erasure["pseudonym"]) == 32
    response = await sealed_client.post("/admin/erasures", json=body, headers=as_eraser())
    assert response.status == 409 and "already erased" in await response.text()
    response = await sealed_client.post(
        "/admin/erasures", json={**body, "agent": {"mbox": "mailto:nobody@example.org"}}, headers=as_eraser())
    assert response.status == 404

    # The erasure is an event of the log, without the identifier.
    conn = await asyncpg.connect(database_url)
    try:
        row = await conn.fetchrow("SELECT position, payload FROM events WHERE event_type = 'erasure'")
    finally:
        await conn.close()
    assert row["position"] == erasure["position"]
    recorded = json.loads(open_payload(row["payload"]))
    assert recorded == {"pseudonym": erasure["pseudonym"], "generations": [1], "reason": "request 2026-117",
                        "by": f"credential:{ERASER}", "documents": 0, "attachments": 0}
    assert b"lan@example.org" not in open_payload(row["payload"])

    # Lan's statements read back with the erased form; new ones are readable under a new key.
    agent = urllib.parse.quote(json.dumps({"mbox": LAN["mbox"]}))
    response = await sealed_client.post("/xapi/statements", json=[statement(LAN)], headers=xapi_headers())
    assert response.status == 200
    response = await sealed_client.get(f"/xapi/statements?agent={agent}", headers=xapi_headers())
    actors = [s["actor"] for s in (await response.json())["statements"]]
    erased = {"objectType": "Agent", "account": {"homePage": "https://lrs.invalid/erased", "name": erasure["pseudonym"]}}
    assert actors == [LAN, erased, erased]


async def test_a_learner_stored_before_sealing_is_refused_and_nothing_changes(database_url: str, tmp_path: Path) -> None:
    async with app_client(database_url, tmp_path, seal_personal_data=False) as clear:
        response = await clear.post("/xapi/statements", json=[statement(LAN)], headers=xapi_headers())
        assert response.status == 200
        # Without sealing there is no key to destroy.
        await add_eraser(database_url, ["erase"])
        response = await clear.post("/admin/erasures", json={"agent": {"mbox": LAN["mbox"]}, "reason": "r"},
                                    headers=as_eraser())
        assert response.status == 409 and "LRS_SEAL_PERSONAL_DATA" in await response.text()
    async with app_client(database_url, tmp_path, seal_personal_data=True,
                          privacy_key_file=tmp_path / "privacy-key") as sealed:
        response = await sealed.post("/xapi/statements", json=[statement(LAN)], headers=xapi_headers())
        assert response.status == 200
        response = await sealed.post("/admin/erasures", json={"agent": {"mbox": LAN["mbox"]}, "reason": "r"},
                                     headers=as_eraser())
        assert response.status == 409 and "before personal data was sealed" in await response.text()
        conn = await asyncpg.connect(database_url)
        try:
            assert await conn.fetchval("SELECT count(*) FROM learner_keys WHERE wrapped IS NOT NULL") >= 1
            assert await conn.fetchval("SELECT count(*) FROM events WHERE event_type = 'erasure'") == 0
        finally:
            await conn.close()


async def test_a_learner_whose_statement_holds_u0000_is_erased(sealed_client, database_url: str) -> None:
    """A string value may hold U+0000 (JSON ``\\u0000``), which PostgreSQL's
    jsonb refuses: looking for the learner's attachments must not need it."""
    learner = {"mbox": "mailto:nul@example.org"}
    with_nul = {**statement(learner), "result": {"response": "a\u0000b"}}
    response = await sealed_client.post("/xapi/statements", json=[with_nul], headers=xapi_headers())
    assert response.status == 200, await response.text()
    await add_eraser(database_url, ["erase"])
    response = await sealed_client.post(
        "/admin/erasures", json={"agent": learner, "reason": "request 2026-118"}, headers=as_eraser())
    assert response.status == 200, await response.text()
    assert (await response.json())["attachments"] == 0


async def test_a_reason_with_the_first_name_the_learners_statements_give_is_refused(sealed_client, database_url: str) -> None:
    """The request names the learner by mbox only; their Statements call them
    "Nguyễn Thị Bình": "Binh asked" would keep the first name in the log."""
    binh = {"mbox": "mailto:p7@example.gov.vn", "name": "Nguyễn Thị Bình"}
    response = await sealed_client.post("/xapi/statements", json=[statement(binh)], headers=xapi_headers())
    assert response.status == 200
    await add_eraser(database_url, ["erase"])
    body = {"agent": {"mbox": binh["mbox"]}, "reason": "Binh asked on 3 May"}
    response = await sealed_client.post("/admin/erasures", json=body, headers=as_eraser())
    refused = await response.json()
    assert response.status == 400 and "a word of their name" in refused["error"], refused
    assert "Bình" not in refused["error"] and "Binh" not in refused["error"]
    response = await sealed_client.post("/admin/erasures", json={**body, "reason": "request 2026-90"}, headers=as_eraser())
    assert response.status == 200, await response.text()


async def test_a_reason_naming_an_identifier_linked_to_the_learner_is_refused(sealed_client, database_url: str) -> None:
    """The learner's linked accounts are erased with them, so the reason kept
    in the log may not name them either: neither the linked account's name
    nor the name that account's Statements give."""
    from tests.e2e.test_competency_persons import link

    person = {"mbox": "mailto:p8@example.gov.vn"}
    account = {"account": {"homePage": "https://mobiedu.example.vn", "name": "ttb2604"}, "name": "Trần Thị Bình"}
    response = await sealed_client.post(
        "/xapi/statements", json=[statement(person), statement(account)], headers=xapi_headers())
    assert response.status == 200, await response.text()
    # ... and an account linked before it sent any Statement: only the identity event holds it (sealed)
    await link(sealed_client, "link", "mbox:" + person["mbox"], "account:https://mobiedu.example.vn|ttb2604",
               "account:https://lms.example.vn|xtb7781")
    await add_eraser(database_url, ["erase"])
    for reason, what in (("Binh asked on 3 May", "name"), ("ticket ttb2604", "account name"),
                         ("ticket xtb7781", "account name")):
        response = await sealed_client.post(
            "/admin/erasures", json={"agent": person, "reason": reason}, headers=as_eraser())
        refused = await response.json()
        assert response.status == 400 and f"a word of a linked identifier's {what}" in refused["error"], refused
    response = await sealed_client.post(
        "/admin/erasures", json={"agent": person, "reason": "request 2026-91"}, headers=as_eraser())
    assert response.status == 200, await response.text()
    assert len((await response.json())["linked"]) == 2
