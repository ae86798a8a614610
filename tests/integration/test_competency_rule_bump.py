"""After a rule-version bump, a ``stale=ok`` answer never mixes two rule sets.

The bump is simulated on a projection the service built: every stored state,
its competency rows and the checkpoint are put back to the rule version
before this one, as the rules before the bump would have left them.  The
service (not rebuilding by itself) then serves the tables' own answers with
``stale=ok``, marked outdated, but refuses a learner's answer, which would
fold the old rules' evidence with these rules beside the old rules'
certifications; a replay rebuilds the same projection under these rules.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Awaitable, Callable

import asyncpg

from projections.competency.catalog import load_live_catalog
from projections.competency.codec import decode_state, encode_state
from projections.competency.model import RULE_VERSION
from projections.competency.store import CompetencyProjection, digest
from projections.replay import replay
from tests.e2e.conftest import xapi_headers
from tests.e2e.test_competency_api import CERTIFYING, eventually, learner_path, log_head, post, roster
from tests.e2e.test_competency_freshness import service, summary
from tests.integration.competency_statements import FAILED, course_statement
from tests.unit.test_competency_rule_versions import written_by_the_rules_before


async def as_the_rules_before_left_it(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        async with conn.transaction():
            for row in await conn.fetch("SELECT tenant, learner, state FROM competency_learners"):
                old = encode_state(written_by_the_rules_before(decode_state(row["state"])))
                await conn.execute("UPDATE competency_learners SET state = $3 WHERE tenant = $1 AND learner = $2",
                                   row["tenant"], row["learner"], old)
            await conn.execute("UPDATE competency_states SET rule_version = rule_version - 1")
            await conn.execute("UPDATE projection_checkpoints SET rule_version = rule_version - 1 WHERE name = 'competency'")
    finally:
        await conn.close()


def current_at(client: Any, head: int) -> Callable[[], Awaitable[bool]]:
    """Whether a unit's summary answers from ``head`` or later."""
    async def current() -> bool:
        response = await summary(client)
        return response.status == 200 and (await response.json())["position"] >= head

    return current


async def test_after_a_rule_bump_a_stale_answer_is_the_old_rules_or_refused_never_both(
    database_url: str, tmp_path: Path
) -> None:
    frameworks = tmp_path / "frameworks"
    frameworks.mkdir()
    learner = f"/competency/learners/{learner_path(1)}"
    async for client in service(database_url, frameworks, frameworks_poll_s=0):
        assert (await client.post("/competency/admin/roster", json=roster({"mic-dt-1": [1, 2]}),
                                  headers=xapi_headers())).status == 200
        # 1 earns the programme, 2 is in progress
        await post(client, *(course_statement(1, m, v, i) for i, (m, v) in enumerate(CERTIFYING)),
                   course_statement(2, "searching", FAILED, 50, 0.3))
        head = await log_head(database_url)
        await eventually(current_at(client, head))
        before = await (await client.get(learner, headers=xapi_headers())).json()
        assert before["certifications"][0]["earned"]
        assert {c["rule_version"] for f in before["frameworks"] for c in f["competencies"]} == {RULE_VERSION}
        counts = (await (await summary(client)).json())["certified"]
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
    try:
        built = await digest(pool)
    finally:
        await pool.close()

    await as_the_rules_before_left_it(database_url)
    async for client in service(database_url, frameworks, frameworks_poll_s=0, competency_auto_rebuild=False):
        async def outdated() -> bool:
            return (await summary(client)).status == 503

        await eventually(outdated)
        # the tables' own answers: the old rules' throughout, marked
        last = await summary(client, stale="ok")
        assert last.status == 200 and last.headers["X-LRS-Freshness"] == "outdated"
        assert (await last.json())["certified"] == counts == 1
        # a learner's answer would fold the old evidence with these rules: refused, with why
        for path, params in ((learner, {}), (f"{learner}/trail", {"competency": CERTIFYING_COMPETENCY})):
            refused = await client.get(path, params={**params, "stale": "ok"}, headers=xapi_headers())
            assert refused.status == 503, await refused.text()
            assert int(refused.headers["Retry-After"]) > 0
            error = (await refused.json())["error"]
            assert (f"built under rule version {RULE_VERSION - 1}; these rules are version {RULE_VERSION}" in error
                    and "lrs replay competency" in error), error
        # so is a unit's list that explains the learners in progress from their states
        refused = await client.get("/competency/units/mic/learners", params={"program": PROGRAM_IRI, "stale": "ok"},
                                   headers=xapi_headers())
        assert refused.status == 503 and f"rule version {RULE_VERSION - 1}" in (await refused.json())["error"]

        pool = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
        try:
            await replay(pool, CompetencyProjection(load_live_catalog(frameworks)))
            assert await digest(pool) == built  # these rules, rebuilt from the log
        finally:
            await pool.close()
        await eventually(current_at(client, head))  # this service's client
        after = await client.get(learner, headers=xapi_headers())
        assert after.status == 200 and (await after.json())["certifications"] == before["certifications"]


CERTIFYING_COMPETENCY = "https://lrs.example.org/competency/vn-tt02-2025/1.0/competences/1.1"
PROGRAM_IRI = "https://lrs.example.org/competency/programs/civil-servant-basic-digital-skills"


async def test_while_the_service_rebuilds_by_itself_its_refusals_say_so_not_to_run_a_replay(
    database_url: str, tmp_path: Path
) -> None:
    """With LRS_COMPETENCY_AUTO_REBUILD (the default) the service rebuilds a
    projection of other rules itself: its 503s say that and to ask again,
    not to run ``lrs replay competency``.  The rebuild is held at its start
    for as long as the test looks (its scratch schema's CREATE waits for this
    test's transaction, which created one of the same name), and let go after."""
    from tests.e2e.test_console import sign_in

    frameworks = tmp_path / "frameworks"
    frameworks.mkdir()
    learner = f"/competency/learners/{learner_path(1)}"
    async for client in service(database_url, frameworks, frameworks_poll_s=0):
        assert (await client.post("/competency/admin/roster", json=roster({"mic-dt-1": [1]}),
                                  headers=xapi_headers())).status == 200
        await post(client, *(course_statement(1, m, v, i) for i, (m, v) in enumerate(CERTIFYING)))
        await eventually(current_at(client, await log_head(database_url)))
        before = await (await client.get(learner, headers=xapi_headers())).json()
    await as_the_rules_before_left_it(database_url)

    holder = await asyncpg.connect(database_url)
    try:
        held = holder.transaction()
        await held.start()
        await holder.execute("CREATE SCHEMA replay_competency")
        async for client in service(database_url, frameworks, frameworks_poll_s=0):
            async def waiting_for_the_lock() -> bool:  # the service's rebuild has begun
                return bool(await scratch_schema_waiters(database_url))

            await eventually(waiting_for_the_lock)
            refused = await summary(client)
            error = (await refused.json())["error"]
            assert refused.status == 503 and int(refused.headers["Retry-After"]) > 0
            assert error.startswith("the competency projection is rebuilding: this service is rebuilding it from the "
                                    f"log by itself: projection 'competency' was built with rule version {RULE_VERSION - 1}"), error
            assert "lrs replay" not in error, error
            for path, params in ((learner, {}), (f"{learner}/trail", {"competency": CERTIFYING_COMPETENCY})):
                refused = await client.get(path, params={**params, "stale": "ok"}, headers=xapi_headers())
                assert refused.status == 503 and int(refused.headers["Retry-After"]) > 0
                error = (await refused.json())["error"]
                assert f"built under rule version {RULE_VERSION - 1}; these rules are version {RULE_VERSION}" in error
                assert "the projection is rebuilding (this service is rebuilding it from the log by itself" in error
                assert error.endswith("ask again once it is done") and "lrs replay" not in error, error
            # the console's page for people: 503, when to come back, and why (the notice)
            assert (await sign_in(client)).status == 303
            page = await client.get(f"/console/learners/{learner_path(1)}")
            html = await page.text()
            assert page.status == 503 and int(page.headers["Retry-After"]) > 0
            assert "this service is rebuilding it from the log by itself" in html and "lrs replay" not in html

            await held.rollback()  # the rebuild goes on

            async def answered() -> bool:
                return (await client.get(learner, headers=xapi_headers())).status == 200

            await eventually(answered)
            after = await (await client.get(learner, headers=xapi_headers())).json()
            assert after["certifications"] == before["certifications"]
    finally:
        await holder.close()


async def scratch_schema_waiters(database_url: str) -> int:
    """Sessions waiting for a lock to create the replay's scratch schema."""
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'CREATE SCHEMA%replay_competency%'"
        )
    finally:
        await conn.close()
