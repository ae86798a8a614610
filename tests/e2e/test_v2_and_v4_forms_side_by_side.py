"""One learner named in the v4 form (what this build writes) and the v2 form
(what builds before the v3 form wrote, the ciphertext inside the Statement)
side by side, alternating, as a store upgraded across those builds holds
them.  Agent filters find them all (one pseudonym), sending any of them again
is a no-op (never 409), ``lrs audit verify`` and ``lrs export`` hold, and one
erasure turns every form into the erased form without rewriting the log
(docs/privacy.md)."""

from __future__ import annotations

import json
import urllib.parse

from lrs.http import keys
from lrs.privacy import seal
from tests.e2e.conftest import xapi_headers
from tests.e2e.test_resend_across_sealed_forms import LAN, events, statement
from tests.e2e.test_sealed_forms_v3_and_v4 import _actors, _payloads, erase, exported_and_verified


async def _post(client, statements: list[dict]) -> None:
    response = await client.post("/xapi/statements", json=statements, headers=xapi_headers())
    assert response.status == 200, await response.text()


def _actor_form(payload: bytes) -> str:
    return seal.decode(payload)["actor"]["sealed"].split(".", 1)[0]


async def test_a_learner_in_v4_and_v2_forms_side_by_side_is_filtered_sent_again_verified_and_erased(
    sealed_client, database_url: str, tmp_path
) -> None:
    learner_keys = sealed_client.app[keys.LEARNER_KEYS]
    sent: list[dict] = []
    for references in (True, False, True, False):  # v4, v2 (a build before v3), v4, v2
        learner_keys._references = references
        learner_keys.forget_all()  # a process of that build has no form of the other one cached
        sent.append(statement(LAN))
        await _post(sealed_client, sent[-1:])
    learner_keys._references = True
    learner_keys.forget_all()

    payloads = await _payloads(database_url)
    assert [_actor_form(p) for p in payloads] == ["v4", "v2", "v4", "v2"]
    pseudonyms = {seal.decode(p)["actor"]["account"]["name"] for p in payloads}
    assert len(pseudonyms) == 1

    agent = urllib.parse.quote(json.dumps({"mbox": LAN["mbox"]}))
    response = await sealed_client.get(f"/xapi/statements?agent={agent}&ascending=true", headers=xapi_headers())
    assert response.status == 200
    found = (await response.json())["statements"]
    assert [s["id"] for s in found] == [s["id"] for s in sent] and all(s["actor"] == LAN for s in found)

    # Each sent again, alone and all together, sealed now in v4: a no-op, whatever form it is stored in.
    count = await events(database_url)
    for one in sent:
        await _post(sealed_client, [one])
        response = await sealed_client.put("/xapi/statements", params={"statementId": one["id"]}, json=one,
                                           headers=xapi_headers())
        assert response.status == 204, await response.text()
    learner_keys.forget_all()
    await _post(sealed_client, sent)
    assert await events(database_url) == count
    changed = {**sent[1], "actor": {**LAN, "name": "Lan N."}}
    response = await sealed_client.post("/xapi/statements", json=[changed], headers=xapi_headers())
    assert response.status == 409, await response.text()

    env = {"LRS_DATABASE_URL": database_url, "LRS_PRIVACY_KEY_FILE": str(tmp_path / "privacy-key")}
    await exported_and_verified(env, b'"mbox":"mailto:lan@example.org"', 4)
    erased = await erase(sealed_client, database_url, {"mbox": LAN["mbox"]})
    assert erased["account"]["name"] == pseudonyms.pop()
    assert await _actors(sealed_client) == [erased] * 4
    await exported_and_verified(env, seal.ERASED_HOME.encode(), 4, absent=b"lan@example.org")
    assert await _payloads(database_url) == payloads + (await _payloads(database_url))[4:]  # nothing rewritten
