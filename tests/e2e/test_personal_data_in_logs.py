"""With personal data sealed (the default), the request log line does not
name a learner in clear: a log lies outside the store, where an erasure
(docs/privacy.md) cannot reach it.  The answer still names what the caller
sent."""

from __future__ import annotations

from typing import Any

from structlog.testing import capture_logs

from tests.e2e.conftest import xapi_headers

PERSON_A = "mbox:mailto:an.nguyen@example.vn"
PERSON_B = "mbox:mailto:binh.tran@example.vn"
ACCOUNT = "account:https://mobiedu.example.vn|an-nguyen-77"


async def _link(client: Any, person: str, *identifiers: str) -> tuple[int, dict[str, Any], list[dict[str, Any]]]:
    with capture_logs() as logs:
        response = await client.post("/competency/admin/identities",
                                     json={"op": "link", "person": person, "identifiers": list(identifiers)},
                                     headers=xapi_headers())
        body = await response.json()
    return response.status, body, [entry for entry in logs if entry.get("event") == "request"]


async def test_an_identity_conflict_is_answered_in_clear_and_logged_by_pseudonym(client: Any) -> None:
    status, _, _ = await _link(client, PERSON_A, ACCOUNT)
    assert status == 200
    status, body, [line] = await _link(client, PERSON_B, ACCOUNT)
    assert status == 409
    assert f"{ACCOUNT} is already linked to the person " in body["error"]
    logged = repr(line)
    assert "an-nguyen-77" not in logged and "an.nguyen" not in logged and "binh.tran" not in logged
    assert "is already linked to the person account:https://lrs.invalid/pseudonym|" in line["error"]


async def test_a_malformed_identifier_is_answered_but_not_logged(client: Any) -> None:
    status, body, [line] = await _link(client, PERSON_A, "an.nguyen@example.vn")
    assert status == 400 and "'an.nguyen@example.vn'" in body["error"] and body["path"] == "$.identifiers[0]"
    assert "an.nguyen" not in repr(line) and "$.identifiers[0]" in line["error"]
