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
from tests.integration.competency_statements import learner_key


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


MOBIEDU_KEY = "account:https://mobiedu.example.vn|cs1-m"
TRAIL_OF = "https://lrs.example.org/competency/vn-tt02-2025/1.0/competences/5.1"


def _clear_fields(answer: dict[str, Any]) -> list[Any]:
    return [answer["learner"], answer["person"], *answer["identifiers"], *answer["merged"]]


async def test_learner_answers_show_identifiers_for_rostered_linked_and_never_rostered_learners_and_nothing_once_erased(
    database_url: str, tmp_path: Path, light_secret_hashing: int
) -> None:
    """``person``, ``identifiers`` and ``merged`` are the identifiers an
    official knows (their keys beside them); a learner the roster never
    named shows the identifier their Statements hold; an erased one shows
    nothing in clear, whichever of its identifiers the path gives."""
    from tests.e2e.test_competency_api import CERTIFYING, post
    from tests.e2e.test_competency_persons import link, on_mobiedu
    from tests.integration.competency_statements import course_statement

    async with app_client(database_url, tmp_path) as client:
        loaded = await client.post("/competency/admin/roster", json=roster({"mic-dt-1": [1, 2]}), headers=xapi_headers())
        assert loaded.status == 200, await loaded.text()
        await post(
            client,
            *(course_statement(1, m, v, i) for i, (m, v) in enumerate(CERTIFYING[:5])),
            *(on_mobiedu(course_statement(1, m, v, 10 + i)) for i, (m, v) in enumerate(CERTIFYING[5:])),
            *(course_statement(9, m, v, 20 + i) for i, (m, v) in enumerate(CERTIFYING)),  # never rostered
        )
        await link(client, "link", learner_key(1), MOBIEDU_KEY)
        await caught_up(client, database_url)

        # rostered, with a linked account, asked by the account's clear key
        by_account = await get_json(client, f"/competency/learners/{quote(MOBIEDU_KEY, safe='')}")
        person_key, (mobiedu_key,) = by_account["person_key"], by_account["merged_keys"]
        assert person_key.startswith(PSEUDONYM_KEY_PREFIX) and mobiedu_key.startswith(PSEUDONYM_KEY_PREFIX)
        assert (by_account["learner"], by_account["key"]) == (MOBIEDU_KEY, mobiedu_key)
        assert (by_account["person"], by_account["merged"]) == (learner_key(1), [MOBIEDU_KEY])
        assert by_account["identifiers"] == [learner_key(1), MOBIEDU_KEY]
        assert by_account["identifier_keys"] == [person_key, mobiedu_key]
        # the same, asked by the keys: the linked account was never rostered, its Statements name it
        for key in (person_key, mobiedu_key):
            by_key = await get_json(client, f"/competency/learners/{quote(key, safe='')}")
            assert (by_key["person"], by_key["merged"]) == (learner_key(1), [MOBIEDU_KEY])
            assert by_key["learner"] == (learner_key(1) if key == person_key else MOBIEDU_KEY)
        trail = await get_json(client, f"/competency/learners/{quote(mobiedu_key, safe='')}/trail", competency=TRAIL_OF)
        assert (trail["learner"], trail["person"], trail["merged"]) == (MOBIEDU_KEY, learner_key(1), [MOBIEDU_KEY])

        # never rostered, asked by its key (as an erased Statement or a log names it)
        never_key = (await get_json(client, f"/competency/learners/{quote(learner_key(9), safe='')}"))["key"]
        never = await get_json(client, f"/competency/learners/{quote(never_key, safe='')}")
        assert (never["learner"], never["person"], never["identifiers"], never["merged"]) == (
            learner_key(9), learner_key(9), [learner_key(9)], [])
        assert (never["key"], never["person_key"]) == (never_key, never_key) and "erased" not in never
        for answer in (by_account, never, trail):
            assert PSEUDONYM_KEY_PREFIX not in str(_clear_fields(answer))

        assert (await sign_in(client)).status == 303
        page = await (await client.get(f"/console/learners/{quote(never_key, safe='')}")).text()
        assert f'id="learner-shown">{learner_key(9)}<' in page and PSEUDONYM_KEY_PREFIX not in page
        page = await (await client.get(f"/console/learners/{quote(person_key, safe='')}")).text()
        assert f'id="learner-shown">{learner_key(1)}<' in page and MOBIEDU_KEY in page
        assert PSEUDONYM_KEY_PREFIX not in page

        # an account linked later, with no Statement yet: the link names it; the answer names the earlier one too
        quiet = "account:https://lms2.example.vn|cs1-x"
        linked = await link(client, "link", learner_key(1), quiet)
        assert linked["identifiers"][0] == learner_key(1)  # the others in the links' (pseudonym) order
        assert sorted(linked["identifiers"][1:]) == sorted([MOBIEDU_KEY, quiet])
        by_person = await get_json(client, f"/competency/learners/{quote(person_key, safe='')}")
        assert (by_person["person"], sorted(by_person["merged"])) == (learner_key(1), sorted([MOBIEDU_KEY, quiet]))
        await link(client, "unlink", learner_key(1), quiet)

        await add_eraser(database_url, ["erase"])
        for agent in ({"mbox": "mailto:cs1@example.gov.vn"}, {"mbox": "mailto:cs9@example.gov.vn"}):
            erased = await client.post("/admin/erasures", json={"agent": agent, "reason": "request 2026-52"},
                                       headers=as_eraser())
            assert erased.status == 200, await erased.text()
        await caught_up(client, database_url)

        clear_texts = ("cs1@", "cs1-m", "cs9@")
        for path in (learner_key(1), MOBIEDU_KEY, person_key, mobiedu_key, learner_key(9), never_key):
            answer = await client.get(f"/competency/learners/{quote(path, safe='')}", headers=xapi_headers())
            text = await answer.text()
            assert answer.status == 200, text
            assert not any(clear in text for clear in clear_texts), text
            shown = await answer.json()
            assert shown["erased"] is True and set(_clear_fields(shown)) == {None}, shown
        gone = await get_json(client, f"/competency/learners/{quote(person_key, safe='')}")
        assert (gone["key"], gone["person_key"], gone["merged_keys"]) == (person_key, person_key, [mobiedu_key])
        trail = await client.get(f"/competency/learners/{quote(mobiedu_key, safe='')}/trail",
                                 params={"competency": TRAIL_OF}, headers=xapi_headers())
        trail_text = await trail.text()
        assert trail.status == 200 and not any(clear in trail_text for clear in clear_texts)
        for key in (person_key, never_key):
            page = await (await client.get(f"/console/learners/{quote(key, safe='')}")).text()
            assert 'id="learner-shown">(erased)<' in page and not any(clear in page for clear in clear_texts)


async def test_a_never_rostered_learner_is_named_by_their_own_statement_not_one_referring_to_it_and_a_page_costs_one_query(
    database_url: str, tmp_path: Path, light_secret_hashing: int
) -> None:
    """The agent filter of GET /xapi/statements also returns Statements that
    refer to the learner's (an instructor's comment on it): those do not name
    the learner, so the identifier comes from the learner's own latest
    Statement.  Learners without a roster reference are read for a whole
    page in one query, not one per learner."""
    from lrs.http import keys
    from lrs.store.statement_identities import identities_in_statements
    from tests.e2e.test_competency_api import CERTIFYING, post
    from tests.integration.competency_statements import course_statement

    async with app_client(database_url, tmp_path) as client:
        loaded = await client.post("/competency/admin/roster", json=roster({"mic-dt-1": [1]}), headers=xapi_headers())
        assert loaded.status == 200, await loaded.text()
        own = [course_statement(n, *CERTIFYING[0], n) for n in range(30, 36)]
        comment = {
            "actor": {"mbox": "mailto:instructor@example.gov.vn"}, "verb": {"id": "http://adlnet.gov/expapi/verbs/commented"},
            "object": {"objectType": "StatementRef", "id": own[0]["id"]},
        }
        await post(client, *own)
        await post(client, comment)
        await caught_up(client, database_url)
        key = (await get_json(client, f"/competency/learners/{quote(learner_key(30), safe='')}"))["key"]
        by_key = await get_json(client, f"/competency/learners/{quote(key, safe='')}")
        assert (by_key["learner"], by_key["person"]) == (learner_key(30), learner_key(30))

        app = client.server.app
        learner_keys, pool = app[keys.LEARNER_KEYS], app[keys.POOL]
        wanted = [PSEUDONYM_KEY_PREFIX + learner_keys.pseudonym("default", learner_key(n)) for n in range(30, 36)]
        queries = 0

        class Counting:
            async def fetch(self, *args: Any, **kwargs: Any) -> Any:
                nonlocal queries
                queries += 1
                return await pool.fetch(*args, **kwargs)

        found = await identities_in_statements(Counting(), learner_keys, "default", wanted)
        assert [found[k].identifier for k in wanted] == [learner_key(n) for n in range(30, 36)]
        # one query for the page, and one more round for the learner whose
        # newest key row is the comment (it holds the learner's key, lrs/store/ref_keys.py)
        assert queries == 2
        queries = 0
        found = await identities_in_statements(Counting(), learner_keys, "default", wanted[1:])
        assert [found[k].identifier for k in wanted[1:]] == [learner_key(n) for n in range(31, 36)]
        assert queries == 1

        # Only officials (all/read, all for admin) see these identifiers: a learner's or an app's credential does not.
        from tests.e2e.test_scopes_tenants_api import credential

        for name, scopes in (("own-reader", ("statements/read/mine",)), ("reader", ("statements/read", "state"))):
            headers = await credential(client, name, *scopes)
            for path in (f"/competency/learners/{quote(key, safe='')}", "/competency/units/mic/learners",
                         "/competency/units/mic/report"):
                response = await client.get(path, params={"program": PROGRAM}, headers=headers)
                assert response.status == 403, (name, path, response.status)
                assert learner_key(30) not in await response.text()
            response = await client.post("/competency/admin/identities", headers=headers,
                                         json={"op": "link", "person": learner_key(30), "identifiers": [learner_key(31)]})
            assert response.status == 403


async def test_a_unit_pages_from_that_is_not_a_small_ascii_number_shows_the_first_learners(
    database_url: str, tmp_path: Path, light_secret_hashing: int
) -> None:
    """``from`` (the offset in the unit page's sorted learner list) is the console's own
    link; any other value (a Unicode digit, a number past int()'s digit limit, a sign)
    shows the first page rather than an error."""
    async with app_client(database_url, tmp_path) as client:
        loaded = await client.post("/competency/admin/roster", json=roster({"mic-dt-1": [1, 2]}), headers=xapi_headers())
        assert loaded.status == 200, await loaded.text()
        await caught_up(client, database_url)
        assert (await sign_in(client)).status == 303
        for start in ("²", "٣", "9" * 5000, "-1", "", "0"):
            page = await client.get("/console/units/mic-dt-1", params={"from": start})
            assert page.status == 200, (start[:10], page.status)
            html = await page.text()
            assert learner_key(1) in html and learner_key(2) in html, start[:10]
