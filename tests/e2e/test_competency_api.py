"""POST statements -> competency state, trail and unit summaries through /competency/...

The in-process service runs without NATS, so its projection follows the
Postgres log directly (the JetStream path is covered with a real
``lrs serve`` in test_competency_audit.py)."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Awaitable, Callable
from urllib.parse import quote

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from lrs.cli import main
from lrs.config import Settings
from lrs.service import create_app
from tests.e2e.conftest import KEY, SECRET, xapi_headers
from tests.integration.competency_statements import (  # the same course, learners and statements
    PASSED,
    VN,
    course_statement,
    learner_key,
    voiding,
)
from tests.integration.competency_statements import MODULES as CERTIFYING  # everything the programme asks for

PROGRAM = "https://lrs.example.org/competency/programs/civil-servant-basic-digital-skills"


def learner_path(n: int) -> str:
    return quote(learner_key(n), safe="")


def roster(learners_by_unit: dict[str, list[int]], since: str = "2024-01-01") -> dict[str, Any]:
    return {
        "units": [
            {"id": "mic", "kind": "ministry", "name": "Ministry of Information and Communications"},
            {"id": "mic-dt", "parent": "mic", "kind": "agency", "name": "Authority of Digital Transformation"},
            {"id": "mic-dt-1", "parent": "mic-dt", "kind": "unit", "name": "Division 1"},
            {"id": "mic-dt-2", "parent": "mic-dt", "kind": "unit", "name": "Division 2"},
            {"id": "moh", "kind": "ministry", "name": "Ministry of Health"},
        ],
        "memberships": [
            {"learner": learner_key(n), "unit": unit, "valid_from": since}
            for unit, numbers in learners_by_unit.items()
            for n in numbers
        ],
    }


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 30.0) -> None:
    """Waits for the projection to catch up (bounded; not a timing assertion)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "the projection did not catch up"
        await asyncio.sleep(0.05)


async def post(client: Any, *bodies: dict[str, Any]) -> None:
    response = await client.post("/xapi/statements", json=list(bodies), headers=xapi_headers())
    assert response.status == 200, await response.text()


async def get_json(client: Any, path: str, status: int = 200, **params: str) -> dict[str, Any]:
    response = await client.get(path, params=params, headers=xapi_headers())
    assert response.status == status, await response.text()
    return await response.json()


async def get_params(client: Any, path: str, params: dict[str, str], status: int = 200) -> dict[str, Any]:
    """GET with query parameters that may be named ``status``."""
    response = await client.get(path, params=params, headers=xapi_headers())
    assert response.status == status, await response.text()
    return await response.json()


async def log_head(database_url: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetchval("SELECT position FROM log_head")
    finally:
        await conn.close()


async def caught_up(client: Any, database_url: str, unit: str = "mic") -> dict[str, Any]:
    head = await log_head(database_url)
    answer: dict[str, Any] = {}

    async def check() -> bool:
        answer.update(await get_json(client, f"/competency/units/{unit}/summary", program=PROGRAM))
        return answer["position"] >= head

    await eventually(check)
    return answer


async def test_statements_become_state_trail_and_unit_rates(client: Any, database_url: str) -> None:
    response = await client.post(
        "/competency/admin/roster", json=roster({"mic-dt-1": [1, 2], "mic-dt-2": [3], "moh": [4]}), headers=xapi_headers()
    )
    assert response.status == 200, await response.text()
    assert (await response.json())["learners"] == 4

    certify_1 = [course_statement(1, m, v, i) for i, (m, v) in enumerate(CERTIFYING)]
    partial_3 = [course_statement(3, m, v, i) for i, (m, v) in enumerate(CERTIFYING[:4])]
    certify_4 = [course_statement(4, m, v, i) for i, (m, v) in enumerate(CERTIFYING)]
    await post(client, *reversed(certify_1), *partial_3, *certify_4)  # out of timestamp order
    summary = await caught_up(client, database_url)
    assert (summary["headcount"], summary["certified"]) == (3, 1)  # learner 4 is in another ministry
    assert summary["rate"] == pytest.approx(1 / 3)
    assert summary["target"] == {"rate": 0.8, "due": None, "source": "program", "overdue": False, "needed": 3, "gap": 2,
                                 "difference": pytest.approx(1 / 3 - 0.8), "met": False}
    assert summary["unit"] == {"id": "mic", "name": "Ministry of Information and Communications", "kind": "ministry", "parent": None}
    only = await get_json(client, "/competency/units/mic-dt-1/summary", program=PROGRAM, descendants="false")
    assert (only["headcount"], only["certified"], only["rate"]) == (2, 1, 0.5)
    top = await get_json(client, "/competency/units/mic/summary", program=PROGRAM, descendants="false")
    assert (top["headcount"], top["certified"], top["rate"]) == (0, 0, None)

    state = await get_json(client, f"/competency/learners/{learner_path(1)}")
    assert state["learner"] == learner_key(1) and state["position"] >= 1
    (certification,) = state["certifications"]
    assert certification["program"] == PROGRAM and certification["earned"] and certification["missing"] == []
    assert set(certification["statement_ids"]) <= {s["id"] for s in certify_1}
    frameworks = {f["framework"]: f for f in state["frameworks"]}
    assert set(frameworks) == {"https://lrs.example.org/competency/vn-tt02-2025", "https://lrs.example.org/competency/digcomp"}
    vn = frameworks["https://lrs.example.org/competency/vn-tt02-2025"]
    assert vn["competences"] == 24 and vn["mastered"] == 9

    searching = f"{VN}/1.1"
    trail = await get_json(client, f"/competency/learners/{learner_path(1)}/trail", competency=searching)
    assert trail["state"]["status"] == "mastered" and trail["state"]["level"] == "CB2"
    assert sorted(e["statement_id"] for e in trail["evidence"]) == sorted(s["id"] for s in certify_1[:2])
    assert [e["timestamp"] for e in trail["evidence"]] == sorted(e["timestamp"] for e in trail["evidence"])

    # Voiding one statement of learner 1 un-certifies it; the unit count follows.
    await post(client, voiding(certify_1[-1]["id"]))
    summary = await caught_up(client, database_url)
    assert (summary["headcount"], summary["certified"]) == (3, 0)
    state = await get_json(client, f"/competency/learners/{learner_path(1)}")
    assert state["certifications"][0]["earned"] is False
    assert state["voided_statement_ids"] == [certify_1[-1]["id"]]


async def test_as_of_answers_from_the_log_with_the_roster_of_that_moment(client: Any, database_url: str) -> None:
    response = await client.post("/competency/admin/roster", json=roster({"mic-dt-1": [1, 2]}), headers=xapi_headers())
    assert response.status == 200
    await post(client, *(course_statement(1, m, v, i) for i, (m, v) in enumerate(CERTIFYING)))
    first = await caught_up(client, database_url)
    assert (first["headcount"], first["certified"]) == (2, 1)
    between = datetime.now(timezone.utc)
    await asyncio.sleep(0.01)  # stored times are strictly after `between`
    await post(client, *(course_statement(2, m, v, i) for i, (m, v) in enumerate(CERTIFYING)))
    # Learner 2 moves to division 2 from now on; learner 5 joins division 1.
    moved = {
        "memberships": [
            {"learner": learner_key(2), "unit": "mic-dt-1", "valid_from": "2024-01-01", "valid_to": _iso(between)},
            {"learner": learner_key(2), "unit": "mic-dt-2", "valid_from": _iso(between)},
            {"learner": learner_key(5), "unit": "mic-dt-1", "valid_from": _iso(between)},
        ]
    }
    response = await client.post("/competency/admin/roster", json=moved, headers=xapi_headers())
    assert response.status == 200, await response.text()
    now = await caught_up(client, database_url, "mic-dt-1")
    assert (now["headcount"], now["certified"]) == (2, 1)  # learners 1 and 5
    division_2 = await get_json(client, "/competency/units/mic-dt-2/summary", program=PROGRAM)
    assert (division_2["headcount"], division_2["certified"]) == (1, 1)

    past = await get_json(client, "/competency/units/mic-dt-1/summary", program=PROGRAM, clock="known",
                          as_of=_iso(between - timedelta(microseconds=1)))
    assert (past["headcount"], past["certified"]) == (2, 1)  # learners 1 and 2; 2 not certified yet
    assert past["position"] == first["position"] and past["as_of"] is not None
    whole = await get_json(client, "/competency/units/mic/summary", program=PROGRAM, clock="known",
                           as_of=_iso(datetime.now(timezone.utc)))
    live = await get_json(client, "/competency/units/mic/summary", program=PROGRAM)
    assert (whole["headcount"], whole["certified"]) == (live["headcount"], live["certified"]) == (3, 2)


async def test_scopes_tenants_and_errors(client: Any, database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        from lrs.auth import hash_secret

        for key, tenant, scopes in (("reader", "default", ["all/read"]), ("writer", "default", ["statements/write"]),
                                    ("other", "other", ["all"])):
            await conn.execute(
                "INSERT INTO credentials (key, secret_hash, tenant, scopes, name) VALUES ($1, $2, $3, $4, $1)",
                key, hash_secret("secret-" + key), tenant, scopes,
            )
    finally:
        await conn.close()

    def as_(key: str) -> dict[str, str]:
        return xapi_headers(key=key, secret="secret-" + key)

    assert (await client.post("/competency/admin/roster", json=roster({"mic-dt-1": [1]}), headers=xapi_headers())).status == 200
    await post(client, course_statement(1, "device-security", PASSED, 1))
    await caught_up(client, database_url)
    path = f"/competency/learners/{learner_path(1)}"
    assert (await client.get(path, headers=as_("reader"))).status == 200
    assert (await client.get(path, headers=as_("writer"))).status == 403
    assert (await client.get(path, headers=as_("other"))).status == 404  # another tenant sees nothing
    assert (await client.get(path)).status == 401
    denied = await client.post("/competency/admin/roster", json=roster({}), headers=as_("reader"))
    assert denied.status == 403 and "'reader'" in (await denied.json())["error"]
    listing = await client.get("/competency/admin/units", headers=as_("reader"))
    assert listing.status == 403 and "'all' scope" in (await listing.json())["error"]
    assert (await client.get("/competency/units/mic/summary", params={"program": PROGRAM}, headers=as_("other"))).status == 404

    only_program = await get_json(client, "/competency/units/mic/summary")  # the only one loaded
    assert (only_program["program"], only_program["program_version"]) == (PROGRAM, "2025.1")
    wrong_version = await get_json(client, "/competency/units/mic/summary", status=404, program=PROGRAM, version="0")
    assert wrong_version["path"] == "version"
    unknown = await get_json(client, "/competency/units/mic/summary", status=404, program="https://example.org/nope")
    assert "no loaded programme" in unknown["error"]
    bad_time = await get_json(client, "/competency/units/mic/summary", status=400, program=PROGRAM, as_of="yesterday")
    assert bad_time["path"] == "as_of"
    await get_json(client, f"{path}/trail", status=400)
    await get_json(client, f"{path}/trail", status=404, competency="https://example.org/not-a-competence")
    nobody = await get_json(client, f"/competency/learners/{quote('mbox:mailto:nobody@example.org', safe='')}",
                            status=404)
    # The official asked by an identifier: the answer names it, never the pseudonym it is read by.
    assert "mbox:mailto:nobody@example.org" in nobody["error"] and "pseudonym" not in nobody["error"], nobody

    invalid = await client.post(
        "/competency/admin/roster",
        json={"memberships": [{"learner": "cs9@example.gov.vn", "unit": "nowhere", "valid_from": "2025-13-01"}]},
        headers=xapi_headers(),
    )
    assert invalid.status == 400
    problems = (await invalid.json())["problems"]
    assert problems == [
        "body $.memberships[0]: not an actor IFI key: 'cs9@example.gov.vn' (expected mbox:mailto:<address>, "
        "mbox_sha1sum:<40 lowercase hex>, openid:<uri> or account:<homePage>|<name>)"
    ]
    csv_body = "learner,unit,valid_from,valid_to\nmbox:mailto:cs7@example.gov.vn,mic-dt-2,2025-01-01,\n"
    loaded = await client.post("/competency/admin/roster", data=csv_body, headers={**xapi_headers(), "Content-Type": "text/csv"})
    assert loaded.status == 200, await loaded.text()
    listed = await get_json(client, "/competency/admin/memberships", unit="mic-dt-2")
    # The admin list keeps the roster's key (a pseudonym key when sealed) and opens the identifier beside it.
    assert [m.get("identifier", m["learner"]) for m in listed["memberships"]] == ["mbox:mailto:cs7@example.gov.vn"]
    units = await get_json(client, "/competency/admin/units")
    assert {u["id"] for u in units["units"]} == {"mic", "mic-dt", "mic-dt-1", "mic-dt-2", "moh"}


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat()


async def test_a_course_alignment_loaded_with_the_cli_gives_evidence_once_the_service_restarts(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    course = "https://lrs.example.org/courses/e-signatures"
    alignment = {
        "format": "lrs.competency/1", "kind": "alignment", "iri": course, "version": "2026.1",
        "title": {"en": "Electronic signatures"},
        "alignments": [{"activity": f"{course}/modules/signing", "competency": f"{VN}/4.1", "level": "TC1", "move_on": "Passed"}],
    }
    source = tmp_path / "e-signatures.json"
    source.write_text(json.dumps(alignment), encoding="utf-8")
    installed = tmp_path / "frameworks"
    monkeypatch.setenv("LRS_FRAMEWORKS_DIR", str(installed))
    assert main(["frameworks", "load", str(source)]) == 0

    settings = Settings(database_url=database_url, nats_url=None, relay_enabled=False,
                        bootstrap_credential=f"{KEY}:{SECRET}", frameworks_dir=installed)
    app = create_app(settings, database_url=database_url, nats_url=None)
    async with TestServer(app) as server, TestClient(server) as client:
        signing = course_statement(1, "device-security", PASSED, 0)
        signing["object"]["id"] = f"{course}/modules/signing"
        await post(client, signing)
        head = await log_head(database_url)

        async def projected() -> bool:
            response = await client.get(f"/competency/learners/{learner_path(1)}", headers=xapi_headers())
            return response.status == 200 and (await response.json())["position"] >= head

        await eventually(projected)
        trail = await get_json(client, f"/competency/learners/{learner_path(1)}/trail", competency=f"{VN}/4.1")
    assert trail["state"]["status"] == "mastered" and trail["state"]["level"] == "TC1"
    assert [(e["statement_id"], e["activity"], e["source"]) for e in trail["evidence"]] == [
        (signing["id"], f"{course}/modules/signing", "alignment")
    ]


async def test_a_state_stored_by_another_version_answers_503_naming_the_replay(client: Any, database_url: str) -> None:
    await post(client, course_statement(1, "device-security", PASSED, 0))
    head = await log_head(database_url)

    async def projected() -> bool:
        response = await client.get(f"/competency/learners/{learner_path(1)}", headers=xapi_headers())
        return response.status == 200 and (await response.json())["position"] >= head

    await eventually(projected)
    conn = await asyncpg.connect(database_url)
    try:  # the JSON form a version before the compact one stored
        await conn.execute("UPDATE competency_learners SET state = $1", json.dumps({"learner": learner_key(1)}).encode())
    finally:
        await conn.close()
    for path, params in ((f"/competency/learners/{learner_path(1)}", {}),
                         (f"/competency/learners/{learner_path(1)}/trail", {"competency": f"{VN}/4.1"})):
        answer = await get_json(client, path, status=503, **params)
        assert "lrs replay competency" in answer["error"]


async def test_a_broken_installed_document_keeps_xapi_up_and_competency_answers_503(database_url: str, tmp_path: Path) -> None:
    installed = tmp_path / "frameworks"
    installed.mkdir()
    (installed / "notes.json").write_text("[]", encoding="utf-8")
    settings = Settings(database_url=database_url, nats_url=None, relay_enabled=False,
                        bootstrap_credential=f"{KEY}:{SECRET}", frameworks_dir=installed)
    app = create_app(settings, database_url=database_url, nats_url=None)
    async with TestServer(app) as server, TestClient(server) as client:
        await post(client, course_statement(1, "device-security", PASSED, 0))  # ingest answers 200
        answer = await get_json(client, f"/competency/learners/{learner_path(1)}", status=503)
        assert "notes.json" in answer["error"]
        summary = await get_json(client, "/competency/units/mic/summary", status=503, program=PROGRAM)
        assert "cannot be read" in summary["error"]


MASTERY = "https://w3id.org/xapi/cmi5/context/extensions/masteryscore"


async def test_children_never_pass_a_module_and_platform_mastery_scores_are_reported(client: Any, database_url: str) -> None:
    searching = "https://lrs.example.org/courses/civil-servant-basic-digital-skills/modules/searching"
    quiz = course_statement(1, "searching", PASSED, 0)
    quiz["verb"]["id"] = "http://adlnet.gov/expapi/verbs/answered"
    quiz["object"] = {"id": f"{searching}/quiz/q1", "definition": {"type": "http://adlnet.gov/expapi/activities/cmi.interaction"}}
    quiz["context"] = {"contextActivities": {"parent": [{"id": searching}]}}
    # the platform's own masteryScore (0.6) is lower than the alignment table's (0.7)
    mobiedu = course_statement(1, "searching", PASSED, 1, score=0.65)
    mobiedu["context"] = {"platform": "MobiEdu", "extensions": {MASTERY: 0.6}}
    agreeing = course_statement(2, "searching", PASSED, 1, score=0.8)
    agreeing["context"] = {"platform": "One Touch", "extensions": {MASTERY: 0.7}}
    assert (await client.post("/competency/admin/roster", json=roster({"mic-dt-1": [1, 2]}), headers=xapi_headers())).status == 200
    await post(client, quiz, mobiedu, agreeing)
    await caught_up(client, database_url)

    trail = await get_json(client, f"/competency/learners/{learner_path(1)}/trail", competency=f"{VN}/1.1")
    assert [e["statement_id"] for e in trail["evidence"]] == [mobiedu["id"]]  # the quiz answer is no evidence
    (evidence,) = trail["evidence"]
    assert (evidence["passed"], evidence["mastery_score"], evidence["statement_mastery_score"]) == (False, 0.7, 0.6)
    assert evidence["mastery_differs"] is True and evidence["platform"] == "MobiEdu"

    report = await get_json(client, "/competency/mastery-mismatches")
    assert report["platforms"] == [{
        "platform": "MobiEdu", "statements": 1,
        "activities": [{"activity": searching, "mastery_score": 0.7, "statement_mastery_scores": [0.6],
                        "statements": 1, "not_passed": 1, "first_at": "2025-03-01T00:01:00.000000Z",
                        "last_at": "2025-03-01T00:01:00.000000Z"}],
    }]


async def test_unit_learners_say_who_is_not_certified_and_why(client: Any, database_url: str) -> None:
    response = await client.post("/competency/admin/roster", json=roster({"mic-dt-1": [1, 2], "mic-dt-2": [3]}), headers=xapi_headers())
    assert response.status == 200
    low = course_statement(2, "searching", PASSED, 5, score=0.65)
    await post(client, *(course_statement(1, m, v, i) for i, (m, v) in enumerate(CERTIFYING)),
               *(course_statement(2, m, v, i) for i, (m, v) in enumerate(CERTIFYING) if m != "searching"), low)
    await caught_up(client, database_url)

    listing = await get_params(client, "/competency/units/mic/learners", {"program": PROGRAM, "status": "not-certified"})
    assert listing["counts"] == {"certified": 1, "in_progress": 1, "not_started": 1} and listing["headcount"] == 3
    assert listing["statuses"] == ["in_progress", "not_started"]
    by_learner = {entry["learner"]: entry for entry in listing["learners"]}
    assert set(by_learner) == {learner_key(2), learner_key(3)}
    partial = by_learner[learner_key(2)]
    assert (partial["status"], partial["unit"], partial["certified_at"]) == ("in_progress", "mic-dt-1", None)
    (gap,) = partial["missing"]
    assert (gap["competency"], gap["level_needed"], gap["level_reached"]) == (f"{VN}/1.1", "CB2", None)
    assert (gap["reason_code"], gap["reason"]) == ("score_below_mastery", "best score 0.65 < mastery score 0.70")
    assert gap["best_attempt"]["statement_id"] == low["id"] and gap["best_attempt"]["score"] == 0.65
    untouched = by_learner[learner_key(3)]
    assert untouched["status"] == "not_started" and {g["reason"] for g in untouched["missing"]} == {"no evidence"}
    assert len(untouched["missing"]) == 9

    certified = await get_params(client, "/competency/units/mic-dt-1/learners", {"program": PROGRAM, "status": "certified"})
    assert [(e["learner"], e["status"], e["missing"]) for e in certified["learners"]] == [(learner_key(1), "certified", [])]
    assert certified["learners"][0]["certified_at"] is not None
    first = await get_json(client, "/competency/units/mic/learners", program=PROGRAM, limit="2")
    rest = await get_json(client, "/competency/units/mic/learners", program=PROGRAM, limit="2", after=first["next_after"])
    paged = first["learners"] + rest["learners"]
    # pages go on in key order (the pseudonym key when sealed), each row shown by its identifier
    assert [e["key"] for e in paged] == sorted(e["key"] for e in paged) and first["next_after"] == first["learners"][-1]["key"]
    assert sorted(e["learner"] for e in paged) == sorted(learner_key(n) for n in (1, 2, 3))
    assert rest["next_after"] is None

    # a rostered learner with no evidence is "not started", not unknown
    state = await get_json(client, f"/competency/learners/{learner_path(3)}")
    assert (state["status"], state["frameworks"], state["certifications"]) == ("not_started", [], [])
    assert (await get_json(client, f"/competency/learners/{learner_path(1)}"))["status"] == "known"
    await get_json(client, f"/competency/learners/{learner_path(9)}", status=404)  # on no roster, no evidence
    wrong = await client.get("/competency/units/mic/learners", params={"program": PROGRAM, "status": "done"}, headers=xapi_headers())
    assert wrong.status == 400 and (await wrong.json())["path"] == "status"
    await get_json(client, "/competency/units/nowhere/learners", status=404, program=PROGRAM)


async def test_reports_per_agency_and_unit_as_csv_and_xlsx_and_from_the_cli(
    client: Any, database_url: str, tmp_path: Path
) -> None:
    import csv
    import io
    import os
    import sys

    from openpyxl import load_workbook

    response = await client.post("/competency/admin/roster", json=roster({"mic-dt-1": [1, 2], "mic-dt-2": [3]}), headers=xapi_headers())
    assert response.status == 200
    await post(client, *(course_statement(1, m, v, i) for i, (m, v) in enumerate(CERTIFYING)),
               course_statement(2, "searching", PASSED, 5, score=0.65))
    await caught_up(client, database_url)

    async def fetch(**params: str) -> tuple[Any, bytes]:
        answer = await client.get("/competency/units/mic/report", params={"program": PROGRAM, **params}, headers=xapi_headers())
        assert answer.status == 200, await answer.text()
        return answer, await answer.read()

    answer, body = await fetch(by="agency")
    assert answer.content_type == "text/csv" and "mic-agency-report-summary.csv" in answer.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(body.decode())))
    assert [(r["unit"], r["headcount"], r["certified"], r["target_rate"], r["target_needed"], r["gap"]) for r in rows] == [
        ("mic", "3", "1", "0.8", "3", "2"), ("mic-dt", "3", "1", "0.8", "3", "2")]
    _, body = await fetch(by="unit")
    rows = list(csv.DictReader(io.StringIO(body.decode())))
    assert [(r["unit"], r["with_descendants"], r["headcount"], r["certified"]) for r in rows] == [
        ("mic", "true", "3", "1"), ("mic-dt", "false", "0", "0"), ("mic-dt-1", "false", "2", "1"), ("mic-dt-2", "false", "1", "0")]
    _, listed = await fetch(part="not-certified")
    learners = list(csv.DictReader(io.StringIO(listed.decode())))
    assert [(r["learner"], r["unit"], r["agency"], r["status"]) for r in learners] == [
        (learner_key(2), "mic-dt-1", "mic-dt", "in_progress"), (learner_key(3), "mic-dt-2", "mic-dt", "not_started")]
    assert "1.1 (needs CB2): best score 0.65 < mastery score 0.70" in learners[0]["missing"]
    # a report for a unit below the agency still names the agency (it was empty)
    below = await client.get("/competency/units/mic-dt-1/report", params={"program": PROGRAM, "part": "not-certified"},
                             headers=xapi_headers())
    assert [(r["unit"], r["agency"]) for r in csv.DictReader(io.StringIO((await below.read()).decode()))] == [
        ("mic-dt-1", "mic-dt")]

    answer, workbook = await fetch(format="xlsx")
    assert answer.content_type == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    book = load_workbook(io.BytesIO(workbook))
    assert [r[0] for r in book["Not certified"].iter_rows(values_only=True)][-2:] == [learner_key(2), learner_key(3)]
    bad = await client.get("/competency/units/mic/report", params={"program": PROGRAM, "by": "desk"}, headers=xapi_headers())
    assert bad.status == 400 and (await bad.json())["path"] == "by"

    # the service's privacy key: the command opens the same sealed references to show the learners
    env = {**os.environ, "LRS_DATABASE_URL": database_url, "LRS_LOG_LEVEL": "warning",
           "LRS_PRIVACY_KEY_FILE": str(tmp_path / "privacy-key")}
    output = tmp_path / "mic.csv"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "lrs", "report", "mic", "--program", PROGRAM, "--format", "csv", "--output", str(output),
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    assert "1/3 certified" in out.decode()
    _, summary = await fetch(by="agency")
    assert output.read_bytes() == summary
    assert (tmp_path / "mic-not-certified.csv").read_bytes() == listed
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "lrs", "report", "nowhere", "--output", str(tmp_path / "x.xlsx"),
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    _, err = await proc.communicate()
    assert proc.returncode == 1 and err.decode().strip() == "lrs report: no unit 'nowhere'"


async def test_the_unit_tree_agrees_with_the_summaries(client: Any, database_url: str) -> None:
    response = await client.post(
        "/competency/admin/roster", json=roster({"mic-dt-1": [1, 2], "mic-dt-2": [3], "moh": [4]}), headers=xapi_headers()
    )
    assert response.status == 200, await response.text()
    certify_1 = [course_statement(1, m, v, i) for i, (m, v) in enumerate(CERTIFYING)]
    partial_3 = [course_statement(3, m, v, i) for i, (m, v) in enumerate(CERTIFYING[:4])]
    await post(client, *certify_1, *partial_3)
    await caught_up(client, database_url)

    tree = await get_json(client, "/competency/units", program=PROGRAM)
    assert [u["id"] for u in tree["units"]] == ["mic", "moh"]
    mic = tree["units"][0]
    assert [c["id"] for c in mic["children"]] == ["mic-dt"]
    assert [c["id"] for c in mic["children"][0]["children"]] == ["mic-dt-1", "mic-dt-2"]
    for node in (mic, mic["children"][0], *mic["children"][0]["children"], tree["units"][1]):
        summary = await get_json(client, f"/competency/units/{node['id']}/summary", program=PROGRAM)
        assert (node["headcount"], node["certified"], node["rate"], node["target"]) == (
            summary["headcount"], summary["certified"], summary["rate"], summary["target"]
        ), node["id"]
    assert (mic["headcount"], mic["certified"]) == (3, 1)
