"""Never stale: an outdated, rebuilding or stalled projection answers 503 with
the reason (or, with stale=ok, the last answer marked with its position and
age); frameworks loaded while the service runs are rebuilt in and swapped
without a restart; the runner resumes by itself after a replay."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any, AsyncIterator

import asyncpg
from aiohttp.test_utils import TestClient, TestServer

from lrs import projection_health
from lrs.config import Settings
from lrs.service import create_app
from projections.competency.catalog import load_live_catalog
from projections.competency.store import CompetencyProjection
from projections.replay import replay
from tests.e2e.conftest import KEY, SECRET, xapi_headers
from tests.e2e.test_competency_api import PROGRAM, eventually, learner_path, log_head, post, roster
from tests.integration.competency_statements import PASSED, VN, course_statement

SIGNING = "https://lrs.example.org/courses/e-signatures"


def signing_alignment() -> dict[str, Any]:
    return {
        "format": "lrs.competency/1", "kind": "alignment", "iri": SIGNING, "version": "2026.1",
        "title": {"en": "Electronic signatures"},
        "alignments": [{"activity": f"{SIGNING}/modules/signing", "competency": f"{VN}/4.1", "level": "TC1"}],
    }


def signing_statement(n: int) -> dict[str, Any]:
    body = course_statement(n, "device-security", PASSED, 0)
    body["object"]["id"] = f"{SIGNING}/modules/signing"
    return body


async def service(database_url: str, frameworks: Path, **settings: Any) -> AsyncIterator[TestClient]:
    app = create_app(Settings(database_url=database_url, nats_url=None, relay_enabled=False,
                              bootstrap_credential=f"{KEY}:{SECRET}", frameworks_dir=frameworks, **settings),
                     database_url=database_url, nats_url=None)
    async with TestServer(app) as server, TestClient(server) as client:
        yield client


async def rostered_and_current(client: Any, database_url: str) -> int:
    """Load a one-learner roster and wait until answers reflect it; the log head."""
    assert (await client.post("/competency/admin/roster", json=roster({"mic-dt-1": [1]}), headers=xapi_headers())).status == 200
    head = await log_head(database_url)

    async def current() -> bool:
        response = await summary(client)
        return response.status == 200 and (await response.json())["position"] >= head

    await eventually(current)
    return head


async def summary(client: Any, **params: str) -> Any:
    return await client.get("/competency/units/mic/summary", params={"program": PROGRAM, **params}, headers=xapi_headers())


async def test_frameworks_loaded_while_running_are_rebuilt_in_without_a_restart(database_url: str, tmp_path: Path) -> None:
    frameworks = tmp_path / "frameworks"
    frameworks.mkdir()
    async for client in service(database_url, frameworks, frameworks_poll_s=0.2):
        assert (await client.post("/competency/admin/roster", json=roster({"mic-dt-1": [1]}), headers=xapi_headers())).status == 200
        await post(client, signing_statement(1))  # not aligned yet: no evidence
        head = await log_head(database_url)

        async def projected() -> bool:
            response = await summary(client)
            return response.status == 200 and (await response.json())["position"] >= head

        await eventually(projected)
        trail_path = f"/competency/learners/{learner_path(1)}/trail"
        before = await client.get(trail_path, params={"competency": f"{VN}/4.1"}, headers=xapi_headers())
        assert before.status == 404  # no evidence at all yet

        (frameworks / "e-signatures.json").write_text(json.dumps(signing_alignment()), encoding="utf-8")
        seen: set[str] = set()

        async def rebuilt() -> bool:
            response = await client.get(trail_path, params={"competency": f"{VN}/4.1"}, headers=xapi_headers())
            if response.status == 503:
                seen.add("503:" + (await response.json())["error"].split(":")[0])
                return False
            body = await response.json()
            if response.status == 200 and "freshness" in body:
                seen.add(body["freshness"]["state"])
                assert response.headers["X-LRS-Freshness"] == body["freshness"]["state"]
                return False
            return response.status == 200 and [e["activity"] for e in body["evidence"]] == [f"{SIGNING}/modules/signing"]

        await eventually(rebuilt)
        assert seen <= {"rebuilding", "503:the competency projection is rebuilding"}
        # and the runner carries on with the new documents
        await post(client, signing_statement(2))
        head = await log_head(database_url)
        await eventually(projected)
        state = await client.get(f"/competency/learners/{learner_path(2)}", headers=xapi_headers())
        assert state.status == 200


async def test_an_outdated_projection_answers_503_until_a_replay_and_then_resumes_by_itself(
    database_url: str, tmp_path: Path
) -> None:
    frameworks = tmp_path / "frameworks"
    frameworks.mkdir()
    async for client in service(database_url, frameworks, frameworks_poll_s=0):
        assert (await client.post("/competency/admin/roster", json=roster({"mic-dt-1": [1]}), headers=xapi_headers())).status == 200
        head = await log_head(database_url)

        async def current() -> bool:
            response = await summary(client)
            return response.status == 200 and (await response.json())["position"] >= head

        await eventually(current)
    # the documents change while the service is down, and it does not rebuild by itself
    (frameworks / "e-signatures.json").write_text(json.dumps(signing_alignment()), encoding="utf-8")
    async for client in service(database_url, frameworks, frameworks_poll_s=0, competency_auto_rebuild=False):
        async def refused() -> bool:
            return (await summary(client)).status == 503

        await eventually(refused)
        answer = await (await summary(client)).json()
        assert "the competency projection is outdated" in answer["error"] and "lrs replay competency" in answer["error"]
        assert "stale=ok" in answer["error"]
        last = await summary(client, stale="ok")
        assert last.status == 200 and last.headers["X-LRS-Freshness"] == "outdated"
        body = await last.json()
        assert body["freshness"]["state"] == "outdated" and body["freshness"]["position"] == head
        assert body["freshness"]["age_s"] >= 0 and body["headcount"] == 1
        # the reason as a code with its values, beside the English sentence as before
        assert body["freshness"]["reason_code"] == "no_auto_rebuild"
        built = body["freshness"]["reason_values"]
        assert built["projection"] == "competency" and built["rules"] == built["built_rules"] == CompetencyProjection.rule_version
        assert built["digest"] == load_live_catalog(frameworks).digest and built["built_digest"] != built["digest"]
        assert body["freshness"]["reason"] == (
            f"projection 'competency' was built with rule version {built['rules']} and frameworks {built['built_digest'][:12]}; "
            f"these are {built['rules']} and {built['digest'][:12]}: run `lrs replay competency` "
            "(LRS_COMPETENCY_AUTO_REBUILD=false: this service does not rebuild it by itself)")
        assert body["freshness"]["reason"] in answer["error"]
        ready = (await (await client.get("/ready")).json())["checks"]["projections"]["competency"]
        assert (ready["state"], ready["reason_code"], ready["reason_values"]) == ("outdated", "no_auto_rebuild", built)
        assert ready["reason"] == body["freshness"]["reason"]
        bad = await summary(client, stale="yes")
        assert bad.status == 400 and (await bad.json())["path"] == "stale"

        pool = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
        try:
            await replay(pool, CompetencyProjection(load_live_catalog(frameworks)))
        finally:
            await pool.close()
        await post(client, signing_statement(1))  # the runner resumed by itself: this gets projected
        head = await log_head(database_url)
        await eventually(current)
        trail = await client.get(f"/competency/learners/{learner_path(1)}/trail", params={"competency": f"{VN}/4.1"},
                                 headers=xapi_headers())
        assert trail.status == 200 and "freshness" not in await trail.json()


async def test_a_projection_stalled_behind_the_log_answers_503_with_the_reason(database_url: str, tmp_path: Path) -> None:
    frameworks = tmp_path / "frameworks"
    frameworks.mkdir()
    async for client in service(database_url, frameworks, frameworks_poll_s=0, competency_stale_after_s=0.3):
        assert (await client.post("/competency/admin/roster", json=roster({"mic-dt-1": [1]}), headers=xapi_headers())).status == 200
        head = await log_head(database_url)

        async def current() -> bool:
            response = await summary(client)
            return response.status == 200 and (await response.json())["position"] >= head

        await eventually(current)
        blocker = await asyncpg.connect(database_url)
        try:
            holding = blocker.transaction()
            await holding.start()
            await blocker.execute("SELECT 1 FROM projection_checkpoints WHERE name = 'competency' FOR UPDATE")
            await post(client, course_statement(1, "device-security", PASSED, 1))  # the runner waits on the lock

            async def stalled() -> bool:
                return (await summary(client)).status == 503

            await eventually(stalled)
            refused = await summary(client)
            assert int(refused.headers["Retry-After"]) > 0  # a 503 says when to come back
            answer = await refused.json()
            assert "the competency projection is behind" in answer["error"] and "events behind the log, the oldest" in answer["error"]
            await holding.rollback()
        finally:
            await blocker.close()
        head = await log_head(database_url)
        await eventually(current)


async def test_a_service_whose_projection_runs_elsewhere_refuses_answers_behind_the_log(
    database_url: str, tmp_path: Path
) -> None:
    """With LRS_HTTP_WORKERS > 1 the HTTP workers run no projection of their
    own (LRS_PROJECTIONS_ENABLED=false; a `project` child does): their answers
    are held to the log and the checkpoint all the same."""
    frameworks = tmp_path / "frameworks"
    frameworks.mkdir()
    async for client in service(database_url, frameworks, frameworks_poll_s=0):
        head = await rostered_and_current(client, database_url)
    # The first service's runner reported itself stopped to lrs.projection_health, which is
    # per process: a service whose projection runs elsewhere starts in a process without it.
    projection_health.forget_runners()
    async for client in service(database_url, frameworks, frameworks_poll_s=0, projections_enabled=False,
                                competency_stale_after_s=0.3):
        fresh = await summary(client)
        assert fresh.status == 200 and "freshness" not in await fresh.json()
        await post(client, course_statement(1, "device-security", PASSED, 1))  # nothing projects it

        async def refused() -> bool:
            return (await summary(client)).status == 503

        await eventually(refused)
        answer = await (await summary(client)).json()
        assert "the competency projection is behind" in answer["error"] and "1 events behind the log" in answer["error"]
        last = await summary(client, stale="ok")
        assert last.status == 200 and last.headers["X-LRS-Freshness"] == "behind"
        body = await last.json()
        assert body["freshness"]["state"] == "behind" and body["freshness"]["position"] == head
        assert body["freshness"]["log_head"] == head + 1
        assert body["freshness"]["reason_code"] == "behind"
        assert body["freshness"]["reason_values"]["events"] == 1 and body["freshness"]["reason_values"]["age_s"] >= 0
        assert body["freshness"]["reason"] == (
            f"the projection is 1 events behind the log, the oldest stored {body['freshness']['reason_values']['age_s']} s ago")

        # /ready and /metrics say the same: state, lag and parked count
        ready = await (await client.get("/ready")).json()
        competency = ready["checks"]["projections"]["competency"]
        assert (competency["state"], competency["position"], competency["log_head"]) == ("behind", head, head + 1)
        assert competency["reason_code"] == "behind" and competency["reason_values"]["events"] == 1
        assert competency["reason"].startswith("the projection is 1 events behind the log, the oldest stored ")
        assert ready["status"] == "ready"  # reported; ingest does not wait for projections
        assert competency["lag_events"] == 1 and competency["lag_s"] >= 0.3 and competency["parked"] == 0
        metrics = await (await client.get("/metrics", headers=xapi_headers())).text()
        assert 'lrs_projection_state{projection="competency",state="behind"} 1.0' in metrics
        assert 'lrs_projection_state{projection="competency",state="current"} 0.0' in metrics
        assert 'lrs_projection_lag_events{projection="competency"} 1.0' in metrics
        assert 'lrs_projection_parked_events{projection="competency"} 0.0' in metrics


async def report(database_url: str, frameworks: Path, tmp_path: Path, *extra: str) -> tuple[int, str, str]:
    # the service's privacy key: the report opens the roster's sealed references to show the learners
    env = {**os.environ, "LRS_DATABASE_URL": database_url, "LRS_FRAMEWORKS_DIR": str(frameworks), "LRS_LOG_LEVEL": "warning",
           "LRS_PRIVACY_KEY_FILE": str(Settings(database_url=database_url).privacy_master_key_file)}  # as service() has it
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "lrs", "report", "mic", "--program", PROGRAM, "--output", str(tmp_path / "mic.xlsx"), *extra,
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    return proc.returncode or 0, out.decode(), err.decode()


async def test_lrs_report_refuses_an_outdated_projection_unless_told_and_then_says_so(database_url: str, tmp_path: Path) -> None:
    frameworks = tmp_path / "frameworks"
    frameworks.mkdir()
    async for client in service(database_url, frameworks, frameworks_poll_s=0):
        await rostered_and_current(client, database_url)
    code, out, err = await report(database_url, frameworks, tmp_path)
    assert code == 0 and "0/1 certified" in out and "NOT CURRENT" not in out, err
    # the documents change while no service runs: the tables no longer match them
    (frameworks / "e-signatures.json").write_text(json.dumps(signing_alignment()), encoding="utf-8")
    (tmp_path / "mic.xlsx").unlink()
    code, out, err = await report(database_url, frameworks, tmp_path)
    assert code == 1 and out == "" and not (tmp_path / "mic.xlsx").exists()
    assert err.startswith("lrs report: the competency projection is outdated: it was built with rule version")
    assert "run `lrs replay competency`" in err and "--stale-ok" in err and len(err.strip().splitlines()) == 1
    code, out, err = await report(database_url, frameworks, tmp_path, "--stale-ok")
    assert code == 0 and (tmp_path / "mic.xlsx").exists(), err
    assert "0/1 certified" in out and "NOT CURRENT: the projection is outdated" in out


SHIPPED = Path(__file__).resolve().parents[2] / "schemas" / "frameworks"


def programme_2026() -> dict[str, Any]:
    document = json.loads((SHIPPED / "civil-servant-basic-digital-skills.program.json").read_text(encoding="utf-8"))
    return {**document, "version": "2026.1", "target_rate": 0.5}


async def test_a_service_whose_projection_runs_elsewhere_follows_the_documents_it_was_rebuilt_with(
    database_url: str, tmp_path: Path
) -> None:
    """A programme loaded while a worker-style service runs (its projection
    runs in another service): once the other rebuilt with it, the worker
    answers for it too, without a restart, and never with old documents on
    the new tables as if current."""
    frameworks = tmp_path / "frameworks"
    frameworks.mkdir()
    async for projecting in service(database_url, frameworks, frameworks_poll_s=0.2):
        await rostered_and_current(projecting, database_url)
        async for worker in service(database_url, frameworks, frameworks_poll_s=0.2, projections_enabled=False):
            before = await summary(worker, version="2026.1")
            assert before.status == 404, await before.text()
            (frameworks / "programme-2026.json").write_text(json.dumps(programme_2026()), encoding="utf-8")

            async def rebuilt() -> bool:
                response = await summary(projecting, version="2026.1")
                return response.status == 200 and "freshness" not in await response.json()

            await eventually(rebuilt)

            async def followed() -> bool:
                response = await summary(worker, version="2026.1")
                return response.status == 200 and "freshness" not in await response.json()

            await eventually(followed)
            body = await (await summary(worker, version="2026.1")).json()
            assert body["program_version"] == "2026.1" and body["target"]["rate"] == 0.5 and body["headcount"] == 1


async def test_ready_says_with_a_code_that_the_frameworks_cannot_be_read(database_url: str, tmp_path: Path) -> None:
    frameworks = tmp_path / "frameworks"
    frameworks.mkdir()
    (frameworks / "notes.json").write_text("[]", encoding="utf-8")  # not a frameworks document
    async for client in service(database_url, frameworks, frameworks_poll_s=0):
        competency = (await (await client.get("/ready")).json())["checks"]["projections"]["competency"]
        assert (competency["state"], competency["reason_code"]) == ("stopped", "frameworks_unreadable")
        error = competency["reason_values"]["error"]
        assert "notes.json" in error and competency["reason"] == f"the competency frameworks cannot be read: {error}"
        refused = await (await summary(client)).json()
        assert refused["error"] == competency["reason"]  # the API's 503 says the same
