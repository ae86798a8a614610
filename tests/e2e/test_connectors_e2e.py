"""Connectors against the real LRS over HTTP.

* Mapped Open edX statements pass the LRS's own validation.
* ``lrs import`` killed with SIGKILL midway and run again: the LRS holds every
  statement exactly once.
* ``lrs pull`` from the real LRS, killed midway and run again: the target holds
  every statement exactly once, with the original ids.
* ``lrs import`` into an LRS shedding most of its requests (503 + Retry-After)
  with a single attempt allowed: it waits as asked and stores every statement
  exactly once.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import signal
import sys
import uuid

import aiohttp
import asyncpg
import pytest

from connectors.fakelrs import FakeLrs
from connectors.framework.runner import RunOptions, run_connector
from connectors.framework.sink import LrsSink
from connectors.openedx.mapping import OpenEdxOptions, map_tracking_line
from connectors.openedx.source import tracking_log_source
from tests.e2e.conftest import KEY, SECRET, xapi_headers

COURSE = "course-v1:edX+DemoX+Demo_Course"
PLATFORM = "https://lms.example.org"
PROBLEM = "block-v1:edX+DemoX+Demo_Course+type@problem+block@3fc5461f86764ad7bdbdf6cbdde61e66"


def tracking_lines() -> list[str]:
    def line(event_type, event, source="server", **extra):
        return json.dumps({
            "username": "learner", "event_type": event_type, "name": event_type, "event_source": source,
            "time": "2024-03-05T10:11:12.345678+00:00", "host": "lms.example.org", "session": "abc",
            "context": {"course_id": COURSE, "user_id": 42, "org_id": "edX", "path": "/x", **extra},
            "event": json.dumps(event) if source == "browser" else event,
        })

    video = {"id": "0b9e39477cf34507a7a48f74be381fdd", "currentTime": 3.2, "duration": 195, "code": "html5"}
    return [
        line("edx.course.enrollment.activated", {"course_id": COURSE, "user_id": 42, "mode": "audit"}),
        line("problem_check", {"problem_id": PROBLEM, "grade": 1, "max_grade": 2, "success": "incorrect",
                               "attempts": 1, "answers": {"x_2_1": ["choice_0", "choice_2"]},
                               "submission": {"x_2_1": {"response_type": "choiceresponse"}}},
             module={"display_name": "Quiz", "usage_key": PROBLEM}),
        line("edx.grades.subsection.grade_calculated", {"block_id": PROBLEM.replace("problem", "sequential"),
                                                        "weighted_total_earned": 1, "weighted_total_possible": 2}),
        line("edx.grades.course.grade_calculated", {"percent_grade": 0.5, "letter_grade": ""}),
        line("edx.course.grade.passed.first_time", {"course_id": COURSE}),
        line("edx.course.completed", {"course_id": COURSE}),
        line("edx.certificate.created", {"certificate_id": "c1", "enrollment_mode": "verified"}),
        line("play_video", video, source="browser"),
        line("pause_video", video, source="browser"),
        line("seek_video", {**video, "old_time": 3.2, "new_time": 60}, source="browser"),
        line("stop_video", video, source="browser"),
        line("complete_video", video, source="browser"),
        line(f"/courses/{COURSE}/courseware/", {"GET": {}, "POST": {}}),
        line("edx.course.enrollment.deactivated", {"course_id": COURSE, "user_id": 42, "mode": "audit"}),
    ]


async def test_mapped_open_edx_statements_are_accepted_by_the_lrs(client, tmp_path):
    path = tmp_path / "tracking.log"
    path.write_text("\n".join(tracking_lines()) + "\n")
    base = str(client.server.make_url("")).rstrip("/")
    mapping = lambda item: map_tracking_line(item, OpenEdxOptions(PLATFORM))  # noqa: E731
    for _ in range(2):  # the second run re-sends the same ids: accepted, not duplicated
        async with LrsSink(base, KEY, SECRET) as sink:
            summary = await run_connector(tracking_log_source([str(path)]), mapping, sink, None, None,
                                          RunOptions(batch_size=5, progress=False))
        assert summary.rejected == [], summary.render()
        assert summary.completed and summary.sent == 14 and summary.skipped_total == 0
    response = await client.get("/xapi/statements?limit=100", headers=xapi_headers())
    assert response.status == 200
    assert len((await response.json())["statements"]) == 14


async def _stored_ids(base_url: str) -> list[str]:
    ids: list[str] = []
    async with aiohttp.ClientSession() as session:
        url = base_url + "/xapi/statements?limit=500"
        while url:
            async with session.get(url, headers=xapi_headers()) as response:
                assert response.status == 200, await response.text()
                page = await response.json()
            ids.extend(s["id"] for s in page["statements"])
            url = (base_url + page["more"]) if page.get("more") else ""
    return ids


async def _event_count(database_url: str) -> int:
    connection = await asyncpg.connect(database_url)
    try:
        return await connection.fetchval("SELECT count(*) FROM events")
    finally:
        await connection.close()


async def _wait_for(predicate, process, timeout: float = 60.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert process.returncode is None, "the process ended before it could be interrupted"
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "lrs", *args]


@pytest.mark.slow
async def test_import_killed_midway_and_rerun_stores_every_statement_once(
    service_factory, nats_url, database_url, tmp_path
):
    service = service_factory(nats_url, LRS_RELAY_ENABLED="false")
    await service.start()
    count = 6000
    path = tmp_path / "statements.ndjson.gz"
    expected: set[str] = set()
    with gzip.open(path, "wt") as handle:
        for n in range(count):
            statement = {
                "actor": {"objectType": "Agent", "account": {"homePage": PLATFORM, "name": f"u{n % 97}"}},
                "verb": {"id": "http://adlnet.gov/expapi/verbs/experienced"},
                "object": {"objectType": "Activity", "id": f"{PLATFORM}/page/{n}"},
            }
            if n % 3:
                statement["id"] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"e2e/{n}"))
                expected.add(statement["id"])
            handle.write(json.dumps(statement) + "\n")
    checkpoint = tmp_path / "import.checkpoint.json"
    args = _cli("import", str(path), "--to", service.base_url, "--key", KEY, "--secret", SECRET,
                "--batch-size", "50", "--concurrency", "2", "--checkpoint", str(checkpoint), "--no-progress")
    log = open(tmp_path / "import.log", "wb")
    process = await asyncio.create_subprocess_exec(*args, stdout=log, stderr=log)
    await _wait_for(checkpoint.exists, process)
    await asyncio.sleep(0.2)  # let a few more batches land
    process.send_signal(signal.SIGKILL)
    assert await process.wait() == -signal.SIGKILL
    cursor = json.loads(checkpoint.read_text())["cursor"]
    offset, line = cursor["files"][str(path)]
    assert 0 < line < count, "the import was not interrupted midway"
    stored_before = await _event_count(database_url)
    assert 0 < stored_before < count

    process = await asyncio.create_subprocess_exec(*args, stdout=log, stderr=log)
    assert await process.wait() == 0, (tmp_path / "import.log").read_text()
    log.close()
    assert "resuming from checkpoint" in (tmp_path / "import.log").read_text()

    ids = await _stored_ids(service.base_url)
    assert len(ids) == count and len(set(ids)) == count
    assert expected <= set(ids)
    assert await _event_count(database_url) == count


@pytest.mark.slow
async def test_import_into_a_shedding_lrs_waits_as_asked_and_stores_every_statement_once(
    service_factory, nats_url, database_url, tmp_path
):
    # One request served at a time, every other one refused with 503 + Retry-After: 1.
    service = service_factory(nats_url, LRS_RELAY_ENABLED="false", LRS_SHED_LATENCY_MS="0",
                              LRS_SHED_MAX_IN_FLIGHT="1")
    await service.start()
    count = 240
    path = tmp_path / "statements.ndjson"
    ids = [str(uuid.uuid5(uuid.NAMESPACE_URL, f"e2e-shed/{n}")) for n in range(count)]
    path.write_text("".join(json.dumps({
        "id": sid,
        "actor": {"objectType": "Agent", "account": {"homePage": PLATFORM, "name": f"u{n % 7}"}},
        "verb": {"id": "http://adlnet.gov/expapi/verbs/experienced"},
        "object": {"objectType": "Activity", "id": f"{PLATFORM}/shed/{n}"},
    }) + "\n" for n, sid in enumerate(ids)))
    args = _cli("import", str(path), "--to", service.base_url, "--key", KEY, "--secret", SECRET,
                "--batch-size", "20", "--concurrency", "4", "--max-attempts", "1",
                "--checkpoint", str(tmp_path / "shed.checkpoint.json"), "--no-progress")
    process = await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.STDOUT)
    output, _ = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, output.decode()

    async with aiohttp.ClientSession() as session:
        async with session.get(service.base_url + "/metrics", headers=xapi_headers()) as response:
            metrics = await response.text()
    shed = sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
               if line.startswith('lrs_shed_total{reason="in_flight"}'))
    assert shed >= 1, "the LRS shed nothing: the test did not exercise shedding"
    stored = await _stored_ids(service.base_url)
    assert sorted(stored) == sorted(ids)
    assert await _event_count(database_url) == count


@pytest.mark.slow
async def test_pull_killed_midway_and_rerun_copies_every_statement_once(
    service_factory, nats_url, database_url, tmp_path
):
    service = service_factory(nats_url, LRS_RELAY_ENABLED="false", LRS_PAGE_SIZE_MAX="100")
    await service.start()
    count = 3000
    async with aiohttp.ClientSession() as session:
        for start in range(0, count, 500):
            body = [{
                "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"pull/{n}")),
                "actor": {"objectType": "Agent", "mbox": f"mailto:l{n % 50}@example.org"},
                "verb": {"id": "http://adlnet.gov/expapi/verbs/completed"},
                "object": {"objectType": "Activity", "id": f"http://example.org/unit/{n}"},
            } for n in range(start, start + 500)]
            async with session.post(service.base_url + "/xapi/statements", json=body,
                                    headers=xapi_headers()) as response:
                assert response.status == 200, await response.text()
    target = FakeLrs("target", "target-secret")
    target.post_delay = 0.01
    await target.start()
    try:
        checkpoint = tmp_path / "pull.checkpoint.json"
        args = _cli("pull", service.base_url, "--key", KEY, "--secret", SECRET, "--page-size", "100",
                    "--to", target.url, "--to-key", "target", "--to-secret", "target-secret",
                    "--batch-size", "50", "--checkpoint", str(checkpoint), "--no-progress")
        log = open(tmp_path / "pull.log", "wb")
        process = await asyncio.create_subprocess_exec(*args, stdout=log, stderr=log)
        await _wait_for(checkpoint.exists, process)
        process.send_signal(signal.SIGKILL)
        assert await process.wait() == -signal.SIGKILL
        received_before = sum(target.posts)
        assert 0 < len(target.statements) < count, "the pull was not interrupted midway"

        process = await asyncio.create_subprocess_exec(*args, stdout=log, stderr=log)
        assert await process.wait() == 0, (tmp_path / "pull.log").read_text()
        log.close()
        expected = {str(uuid.uuid5(uuid.NAMESPACE_URL, f"pull/{n}")) for n in range(count)}
        assert set(target.statements) == expected
        # resumed, not restarted: far fewer than all statements were sent again
        assert sum(target.posts) - received_before < count
        assert all("stored" not in s for s in target.statements.values())
    finally:
        await target.close()
