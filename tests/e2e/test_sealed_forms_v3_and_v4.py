"""A store whose Statements name a learner in the v3 sealed form (written
before v4) and in the v4 form side by side: GET opens both alike, sending
an old Statement again is a no-op, ``lrs export`` gives what GET gives,
``lrs audit verify`` holds before and after an erasure, and the erasure
turns both forms into the documented erased form (docs/privacy.md)."""

from __future__ import annotations

import asyncpg

from lrs.http import keys
from lrs.payload_codec import open_payload
from lrs.privacy import seal, sealed_text
from tests.e2e.conftest import xapi_headers
from tests.e2e.test_erasure_api import add_eraser, as_eraser
from tests.e2e.test_export_e2e import _lrs
from tests.e2e.test_resend_across_sealed_forms import LAN, resend, statement


async def _payloads(database_url: str) -> list[bytes]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT payload FROM events WHERE event_type = 'statement' ORDER BY position")
    finally:
        await conn.close()
    return [open_payload(bytes(r["payload"])) for r in rows]


async def _actors(client) -> list[dict]:
    response = await client.get("/xapi/statements", params={"ascending": "true"}, headers=xapi_headers())
    assert response.status == 200
    return [s["actor"] for s in (await response.json())["statements"]]


async def exported_and_verified(env: dict[str, str], needle: bytes, count: int, *, absent: bytes = b"sealed") -> None:
    """``lrs export`` holds ``needle`` ``count`` times and never ``absent``;
    ``lrs audit verify`` passes."""
    status, out, err = await _lrs("export", env=env)
    assert status == 0, err
    assert out.count(needle) == count and absent not in out
    status, _, err = await _lrs("audit", "verify", env=env)
    assert status == 0, err


async def erase(client, database_url: str, agent: dict) -> dict:
    """Erases ``agent`` through the admin API; its erased form."""
    await add_eraser(database_url, ["erase"])
    response = await client.post("/admin/erasures", json={"agent": agent, "reason": "r 3"}, headers=as_eraser())
    assert response.status == 200, await response.text()
    return {"objectType": "Agent", "account": {"homePage": seal.ERASED_HOME, "name": (await response.json())["pseudonym"]}}


async def test_a_store_with_v3_and_v4_forms_reads_exports_verifies_and_erases(
    sealed_client, database_url: str, tmp_path
) -> None:
    learner_keys = sealed_client.app[keys.LEARNER_KEYS]
    learner_keys._reference_form = "v3"  # as builds before v4 sealed
    old = [statement(LAN), statement(LAN)]
    response = await sealed_client.post("/xapi/statements", json=old, headers=xapi_headers())
    assert response.status == 200
    learner_keys._reference_form = sealed_text.SHORT
    learner_keys.forget_all()  # a process of this build has no form of the older one cached
    new = [statement(LAN), statement(LAN)]
    response = await sealed_client.post("/xapi/statements", json=new, headers=xapi_headers())
    assert response.status == 200

    payloads = await _payloads(database_url)
    assert all(b'"sealed":"v3.' in p and b'"sealed":"v4.' not in p for p in payloads[:2])
    assert all(b'"sealed":"v4.' in p and b'"sealed":"v3.' not in p for p in payloads[2:])
    assert len(payloads[2]) < len(payloads[0])  # same content, shorter form
    assert await _actors(sealed_client) == [LAN] * 4

    env = {"LRS_DATABASE_URL": database_url, "LRS_PRIVACY_KEY_FILE": str(tmp_path / "privacy-key")}
    await exported_and_verified(env, b'"mbox":"mailto:lan@example.org"', 4)

    await resend(sealed_client, old, database_url)  # an old-form Statement sent again: no-op; changed: 409

    erased = await erase(sealed_client, database_url, {"mbox": LAN["mbox"]})
    assert await _actors(sealed_client) == [erased] * 5
    await exported_and_verified(env, seal.ERASED_HOME.encode(), 5, absent=b"lan@example.org")
    assert await _payloads(database_url) == [*payloads, *(await _payloads(database_url))[4:]]  # nothing rewritten
