"""A Statement sent again with the same id and content is a no-op (xAPI:
204 / 200, never 409) even when it was stored in another form than the one
this build seals in: v2 before the v3 sealed form, or in clear before
sealing was turned on (docs/privacy.md).  Different content is still 409."""

from __future__ import annotations

import uuid
from pathlib import Path

import asyncpg

from lrs.http import keys
from tests.e2e.conftest import app_client, xapi_headers

LAN = {"objectType": "Agent", "mbox": "mailto:lan@example.org", "name": "Lan"}
TEACHER = {"objectType": "Agent", "account": {"homePage": "https://lms.example", "name": "t1"}}


def statement(actor: dict, verb: str = "passed") -> dict:
    return {"id": str(uuid.uuid4()), "actor": actor, "verb": {"id": f"http://adlnet.gov/expapi/verbs/{verb}"},
            "object": {"id": "https://lms.example/course"}, "context": {"instructor": TEACHER}}


async def events(database_url: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetchval("SELECT count(*) FROM events WHERE event_type = 'statement'")
    finally:
        await conn.close()


async def resend(client, stored: list[dict], database_url: str) -> None:
    count = await events(database_url)
    new = statement(LAN, "completed")
    response = await client.post("/xapi/statements", json=[*stored, new], headers=xapi_headers())
    assert response.status == 200, await response.text()
    assert await response.json() == [s["id"] for s in [*stored, new]]
    response = await client.put("/xapi/statements", params={"statementId": stored[0]["id"]}, json=stored[0],
                                headers=xapi_headers())
    assert response.status == 204, await response.text()
    assert await events(database_url) == count + 1  # only the new one
    changed = {**stored[1], "actor": {**LAN, "name": "Lan N."}}
    response = await client.post("/xapi/statements", json=[changed], headers=xapi_headers())
    assert response.status == 409, await response.text()
    response = await client.get("/xapi/statements", params={"statementId": stored[1]["id"]}, headers=xapi_headers())
    assert response.status == 200 and (await response.json())["actor"] == LAN


async def test_statements_stored_in_the_v2_form_sent_again(sealed_client, database_url: str) -> None:
    learner_keys = sealed_client.app[keys.LEARNER_KEYS]
    learner_keys._references = False  # as builds before the v3 form sealed
    stored = [statement(LAN), statement(LAN)]
    response = await sealed_client.post("/xapi/statements", json=stored, headers=xapi_headers())
    assert response.status == 200
    learner_keys._references = True
    learner_keys.forget_all()  # a process of this build has no form of the older one cached
    await resend(sealed_client, stored, database_url)


async def test_statements_stored_in_clear_sent_again_once_sealing_is_on(database_url: str, tmp_path: Path) -> None:
    stored = [statement(LAN), statement(LAN)]
    async with app_client(database_url, tmp_path, seal_personal_data=False) as clear:
        response = await clear.post("/xapi/statements", json=stored, headers=xapi_headers())
        assert response.status == 200
    async with app_client(database_url, tmp_path, seal_personal_data=True,
                          privacy_key_file=tmp_path / "privacy-key") as sealed:
        await resend(sealed, stored, database_url)
