"""Officials see learners by the identifier the roster gave, not by the
pseudonym key the sealed projection keeps (docs/privacy.md), in the API, the
CSV report and the console; an erased learner shows as erased, never with the
pseudonym in the identifier's place.  Real service, PostgreSQL, sealing on
(the default)."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from lrs.store.learner_refs import PSEUDONYM_KEY_PREFIX
from tests.e2e.conftest import app_client, xapi_headers
from tests.e2e.test_competency_api import PROGRAM, caught_up, get_json, roster
from tests.e2e.test_console import sign_in
from tests.e2e.test_erasure_api import add_eraser, as_eraser
from tests.integration.test_projection_runner import learner_key


async def _csv_rows(client: Any) -> list[dict[str, str]]:
    answer = await client.get(
        "/competency/units/mic/report", params={"program": PROGRAM, "part": "not-certified"}, headers=xapi_headers()
    )
    assert answer.status == 200, await answer.text()
    return list(csv.DictReader(io.StringIO((await answer.read()).decode())))


async def test_sealed_learners_show_by_identifier_and_erased_ones_as_erased(
    database_url: str, tmp_path: Path, light_secret_hashing: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the erased learner keeps counting (under the pseudonym) so the lists still hold a row for them
    monkeypatch.setenv("LRS_ERASED_LEARNERS_IN_TOTALS", "count")
    async with app_client(database_url, tmp_path) as client:
        loaded = await client.post("/competency/admin/roster", json=roster({"mic-dt-1": [1, 2]}), headers=xapi_headers())
        assert loaded.status == 200, await loaded.text()
        await caught_up(client, database_url)

        listed = await get_json(client, "/competency/units/mic/learners", program=PROGRAM)
        rows = {e["learner"]: e for e in listed["learners"]}
        assert set(rows) == {learner_key(1), learner_key(2)}
        key_1, key_2 = rows[learner_key(1)]["key"], rows[learner_key(2)]["key"]
        assert key_1.startswith(PSEUDONYM_KEY_PREFIX) and key_2.startswith(PSEUDONYM_KEY_PREFIX)
        assert not any(e.get("erased") for e in listed["learners"])
        # named by its pseudonym key, a learner answers with the identifier
        by_key = await get_json(client, f"/competency/learners/{quote(key_1, safe='')}")
        assert (by_key["learner"], by_key["key"]) == (learner_key(1), key_1)

        report = await _csv_rows(client)
        assert [(r["learner"], r["learner_key"]) for r in report] == [(learner_key(1), key_1), (learner_key(2), key_2)]

        assert (await sign_in(client)).status == 303
        unit_page = await (await client.get("/console/units/mic-dt-1")).text()
        assert learner_key(1) in unit_page and learner_key(2) in unit_page
        assert key_1 not in unit_page and PSEUDONYM_KEY_PREFIX not in unit_page
        learner_page = await (await client.get(f"/console/learners/{quote(learner_key(1), safe='')}")).text()
        assert f'id="learner-shown">{learner_key(1)}<' in learner_page

        await add_eraser(database_url, ["erase"])
        erased = await client.post(
            "/admin/erasures", json={"agent": {"mbox": "mailto:cs2@example.gov.vn"}, "reason": "request 2026-41"},
            headers=as_eraser(),
        )
        assert erased.status == 200, await erased.text()
        await caught_up(client, database_url)

        listed = await get_json(client, "/competency/units/mic/learners", program=PROGRAM)
        rows = {e["key"]: e for e in listed["learners"]}
        assert (rows[key_2]["learner"], rows[key_2].get("erased")) == (None, True)
        assert (rows[key_1]["learner"], rows[key_1].get("erased")) == (learner_key(1), None)
        gone = await get_json(client, f"/competency/learners/{quote(key_2, safe='')}")
        assert (gone["learner"], gone["erased"], gone["key"]) == (None, True, key_2)

        report = await _csv_rows(client)
        assert [(r["learner"], r["learner_key"]) for r in report] == [("(erased)", key_2), (learner_key(1), key_1)]

        unit_page = await (await client.get("/console/units/mic-dt-1")).text()
        assert learner_key(2) not in unit_page and '<em class="erased">(erased)</em>' in unit_page
        assert learner_key(1) in unit_page
        erased_page = await (await client.get(f"/console/learners/{quote(key_2, safe='')}")).text()
        assert 'id="learner-shown">(erased)<' in erased_page and learner_key(2) not in erased_page
