"""``lrs forward`` from a real LRS (``lrs serve`` relaying to its own nats-server).

* Personal data is sealed at the source (the default): the forwarder opens
  each statement before sending it, so the target holds what the source's
  GET /xapi/statements returns.  An erased learner's statements go in the
  erased form; without the privacy key the forwarder stops with one line
  naming LRS_PRIVACY_KEY_FILE and sends nothing.
* The target (a second ``lrs serve`` with its own database) goes down while
  statements keep coming, and comes back: the forwarder waits and delivers;
  stopped and started again it resumes from its durable consumer.  The target
  holds every source statement exactly once, with the same ids.
* Filters (verb, activity, tenant) select what is forwarded; a statement the
  target refuses (400) and one it keeps failing on (500) are parked in the
  dead-letter stream with the target's error; ``dead-letters replay`` delivers
  them once the target is fixed and empties the dead-letter stream.
* A target shedding load (503 + Retry-After) is waited out as it asks, with a
  single attempt allowed: the forwarder never reports it unavailable, and it
  holds every statement exactly once.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from connectors.fakelrs import FakeLrs
from lrs.auth import hash_secret
from lrs.store.credentials import insert_credential
from tests.e2e.conftest import KEY, SECRET, xapi_headers
from tests.conftest import HISTORY_CONSUMER
from tests.e2e.statements import statement

pytestmark = pytest.mark.slow

VERB_PASSED = "http://adlnet.gov/expapi/verbs/passed"
VERB_EXPERIENCED = "http://adlnet.gov/expapi/verbs/experienced"
UNIT = "http://example.org/courses/digital-literacy/unit-"


class Forwarder:
    """``lrs forward`` as a child process with its output in a file."""

    def __init__(self, args: list[str], log_path: Path, **env: str) -> None:
        self.args = args
        self.env = {**os.environ, **env}
        self.log_path = log_path
        self.process: asyncio.subprocess.Process | None = None

    async def start(self, *extra: str) -> None:
        log = open(self.log_path, "ab")
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "lrs", "forward", *self.args, *extra, stdout=log, stderr=log, env=self.env
        )
        log.close()

    async def stop(self) -> int:
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.process.wait(), 60)

    async def wait(self, timeout: float = 120) -> int:
        assert self.process is not None
        return await asyncio.wait_for(self.process.wait(), timeout)

    def log(self) -> str:
        return self.log_path.read_text()


async def _lrs(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "lrs", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await process.communicate()
    return process.returncode, out.decode(), err.decode()


async def _post(base_url: str, body: Any, key: str = KEY, secret: str = SECRET) -> list[str]:
    async with aiohttp.ClientSession() as session:
        async with session.post(base_url + "/xapi/statements", json=body,
                                headers=xapi_headers(key=key, secret=secret)) as response:
            assert response.status == 200, await response.text()
            return await response.json()


async def _read_all(base_url: str) -> dict[str, dict[str, Any]]:
    """Every statement GET /xapi/statements returns, by id, following ``more``."""
    found: dict[str, dict[str, Any]] = {}
    url = base_url + "/xapi/statements?limit=500"
    async with aiohttp.ClientSession() as session:
        while url:
            async with session.get(url, headers=xapi_headers()) as response:
                assert response.status == 200, await response.text()
                page = await response.json()
            found.update((s["id"], s) for s in page["statements"])
            url = base_url + page["more"] if page.get("more") else ""
    return found


def _as_sent(statement: dict[str, Any]) -> dict[str, Any]:
    """What the source's GET and the target hold alike: all but the times
    and authority each LRS sets itself."""
    return {key: value for key, value in statement.items() if key not in ("stored", "authority")}


async def _statement_ids(database_url: str) -> list[str]:
    connection = await asyncpg.connect(database_url)
    try:
        rows = await connection.fetch("SELECT statement_id FROM events ORDER BY position")
    finally:
        await connection.close()
    return [str(row["statement_id"]) for row in rows]


async def _eventually(check, what: str, timeout: float = 90.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.2)


async def _dead_letters(nats_url: str, name: str) -> list[dict[str, Any]]:
    status, out, err = await _lrs("forward", "dead-letters", "list", "--name", name, "--nats-url", nats_url, "--json")
    assert status == 0, err
    return [json.loads(line) for line in out.splitlines()]


def _batch(start: int, count: int, **fields: Any) -> list[dict[str, Any]]:
    return [statement(statement_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"forward/{n}")),
                      learner=f"l{n % 37}@example.org", **fields) for n in range(start, start + count)]


async def test_target_down_for_a_while_then_back_gets_everything_once(
    service_factory, nats_control, database_url, second_database_url, tmp_path
):
    # Personal data sealed at the source, as by default: the forwarder finds
    # the key as `lrs serve` does, in the data dir.
    source = service_factory(nats_control.url)
    await source.start()
    target = service_factory(nats_control.url, LRS_DATABASE_URL=second_database_url, LRS_RELAY_ENABLED="false")
    await target.start()
    forwarder = Forwarder(["--to", target.base_url, "--key", KEY, "--secret", SECRET, "--name", "to-target",
                           "--nats-url", nats_control.url, "--batch-size", "40", "--no-progress",
                           "--database-url", database_url],
                          tmp_path / "forward.log", LRS_DATA_DIR=source.env["LRS_DATA_DIR"])
    await forwarder.start()

    sent = []
    for start in range(0, 200, 50):
        sent += await _post(source.base_url, _batch(start, 50))

    async def target_has_some() -> bool:
        return len(await _statement_ids(second_database_url)) > 0

    await _eventually(target_has_some, "the first forwarded statements")

    assert await target.stop() == 0  # the target goes down ...
    for start in range(200, 500, 50):
        sent += await _post(source.base_url, _batch(start, 50))

    async def forwarder_waits() -> bool:
        return forwarder.log().count("target unavailable") >= 3

    await _eventually(forwarder_waits, "the forwarder to hold statements for the unreachable target")
    await target.start()  # ... and comes back

    async def target_has_all() -> bool:
        return len(await _statement_ids(second_database_url)) >= len(sent)

    await _eventually(target_has_all, "every statement at the target")

    # Stopped, statements keep coming, started again: it resumes where it stopped.
    assert await forwarder.stop() == 0
    for start in range(500, 600, 50):
        sent += await _post(source.base_url, _batch(start, 50))
    await forwarder.start("--until-caught-up")
    assert await forwarder.wait() == 0, forwarder.log()

    received = await _statement_ids(second_database_url)
    assert len(received) == len(sent) == 600
    assert set(received) == set(sent) == set(await _statement_ids(database_url))
    assert "forwarded" in forwarder.log()
    assert await _dead_letters(nats_control.url, "to-target") == []
    # The target holds the statements in clear, as the source's GET returns them.
    at_source, at_target = await _read_all(source.base_url), await _read_all(target.base_url)
    assert len(at_target) == 600
    assert {i: _as_sent(s) for i, s in at_target.items()} == {i: _as_sent(s) for i, s in at_source.items()}
    assert at_target[sent[0]]["actor"]["mbox"] == "mailto:l0@example.org"


async def test_sealed_statements_go_opened_an_erased_learner_erased_and_none_without_the_key(
    service_factory, nats_control, database_url, tmp_path
):
    # A store that ran in clear first, then sealed (the default): both kinds.
    source = service_factory(nats_control.url, LRS_SEAL_PERSONAL_DATA="false")
    await source.start()
    early = await _post(source.base_url, [statement(learner="early@example.org") for _ in range(3)])
    assert await source.stop() == 0
    source.env["LRS_SEAL_PERSONAL_DATA"] = "true"
    await source.start()
    kept = await _post(source.base_url, [statement(learner="kept@example.org") for _ in range(4)])
    gone = await _post(source.base_url, [statement(learner="gone@example.org") for _ in range(4)])
    status, out, err = await _lrs_env(source.env, "erase", "learner", json.dumps({"mbox": "mailto:gone@example.org"}),
                                      "--tenant", "default", "--reason", "data subject request")
    assert status == 0, out + err
    events = len(early) + len(kept) + len(gone) + 1  # and the erasure event

    async def stream_has_all() -> bool:
        return await _stream_messages(nats_control.url) >= events

    await _eventually(stream_has_all, "the relay to publish every event")
    target = FakeLrs("target", "target-secret")
    await target.start()
    try:
        args = ["--to", target.url, "--key", "target", "--secret", "target-secret", "--name", "opened",
                "--nats-url", nats_control.url, "--until-caught-up", "--no-progress", "--database-url", database_url]

        # No key: one line naming the setting, nothing sent, not even the clear statements of the batch.
        missing = tmp_path / "no-such-key"
        without = Forwarder(args, tmp_path / "without-key.log", LRS_PRIVACY_KEY_FILE=str(missing))
        await without.start()
        assert await without.wait() == 1, without.log()
        [stopped] = [line for line in without.log().splitlines() if "stopped" in line]
        assert "LRS_PRIVACY_KEY_FILE" in stopped and str(missing) in stopped, without.log()
        assert "Traceback" not in without.log()
        assert not target.received and not target.statements

        # With the source's key file: everything, opened, the same statements again.
        forwarder = Forwarder(args, tmp_path / "forward.log",
                              LRS_PRIVACY_KEY_FILE=str(Path(source.env["LRS_DATA_DIR"]) / "privacy-key"))
        await forwarder.start()
        assert await forwarder.wait() == 0, forwarder.log()
        at_source = await _read_all(source.base_url)
        assert set(target.statements) == set(at_source) == set(early + kept + gone)
        assert {i: _as_sent(s) for i, s in target.statements.items()} == {i: _as_sent(s) for i, s in at_source.items()}
        assert "sealed" not in json.dumps(list(target.statements.values()))
        assert {target.statements[i]["actor"]["mbox"] for i in early + kept} == {"mailto:early@example.org",
                                                                                 "mailto:kept@example.org"}
        for statement_id in gone:  # the erased form: no personal data reaches the target
            actor = target.statements[statement_id]["actor"]
            assert set(actor) == {"objectType", "account"}, actor
            assert actor["account"]["homePage"] == "https://lrs.invalid/erased"
        assert "gone@example.org" not in json.dumps(list(target.statements.values()))

        # The same statements read from the log (connectors/forward/logfill.py): a forwarder
        # made once the stream holds nothing for it sends them opened, and erased, alike.
        await _delete_consumers(nats_control.url, HISTORY_CONSUMER, "opened")

        async def stream_empty() -> bool:  # the projection acknowledged the rest
            return await _stream_messages(nats_control.url) == 0

        await _eventually(stream_empty, "the stream to hold nothing")
        from_log = FakeLrs("target", "target-secret")
        await from_log.start()
        try:
            late_args = [from_log.url if a == target.url else "late" if a == "opened" else a for a in args]
            late = Forwarder(late_args, tmp_path / "late.log",
                             LRS_PRIVACY_KEY_FILE=str(Path(source.env["LRS_DATA_DIR"]) / "privacy-key"))
            await late.start()
            assert await late.wait() == 0, late.log()
            assert f"from the log {len(early + kept + gone)}" in late.log(), late.log()
            assert from_log.statements == target.statements
        finally:
            await from_log.close()
    finally:
        await target.close()


async def _delete_consumers(nats_url: str, *names: str) -> None:
    import nats

    nc = await nats.connect(nats_url)
    try:
        for name in names:
            await nc.jetstream().delete_consumer("LRS_EVENTS", name)
    finally:
        await nc.close()


async def _lrs_env(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "lrs", *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await process.communicate()
    return process.returncode or 0, out.decode(), err.decode()


async def _hold_one_request(base_url: str) -> asyncio.StreamWriter:
    """A statements POST whose body never finishes: while it is open the
    target serves one request, all its LRS_SHED_MAX_IN_FLIGHT=1 allows."""
    host, port = base_url.removeprefix("http://").rsplit(":", 1)
    _, writer = await asyncio.open_connection(host, int(port))
    head = {**xapi_headers(), "Host": f"{host}:{port}", "Content-Type": "application/json",
            "Content-Length": "100000"}
    writer.write(("POST /xapi/statements HTTP/1.1\r\n"
                  + "".join(f"{name}: {value}\r\n" for name, value in head.items()) + "\r\n[").encode())
    await writer.drain()
    return writer


async def _shed_count(base_url: str) -> float:
    async with aiohttp.ClientSession() as session:
        async with session.get(base_url + "/metrics", headers=xapi_headers()) as response:
            metrics = await response.text()
    return sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
               if line.startswith('lrs_shed_total{reason="in_flight"}'))


async def _probe_is_refused(base_url: str) -> bool:
    async with aiohttp.ClientSession() as session:
        async with session.post(base_url + "/xapi/statements", json=[], headers=xapi_headers()) as response:
            return response.status == 503 and response.headers.get("Retry-After") == "1"


async def test_a_shedding_target_is_waited_out_as_it_asks(
    service_factory, nats_control, database_url, second_database_url, tmp_path
):
    source = service_factory(nats_control.url, LRS_SEAL_PERSONAL_DATA="false")
    await source.start()
    target = service_factory(nats_control.url, LRS_DATABASE_URL=second_database_url, LRS_RELAY_ENABLED="false",
                             LRS_SHED_LATENCY_MS="0", LRS_SHED_MAX_IN_FLIGHT="1")
    await target.start()
    sent = await _post(source.base_url, _batch(0, 60))
    held = await _hold_one_request(target.base_url)

    assert await _probe_is_refused(target.base_url), "the held request does not make the target shed"
    refused_before = await _shed_count(target.base_url)
    forwarder = Forwarder(["--to", target.base_url, "--key", KEY, "--secret", SECRET, "--name", "to-shedding",
                           "--nats-url", nats_control.url, "--batch-size", "20", "--no-progress",
                           "--max-attempts", "1", "--database-url", database_url, "--until-caught-up"],
                          tmp_path / "forward.log")
    await forwarder.start()

    async def forwarder_was_refused_twice() -> bool:
        return await _shed_count(target.base_url) >= refused_before + 2

    await _eventually(forwarder_was_refused_twice, "the target to refuse the forwarder")
    held.close()  # the held request ends: the target serves again
    assert await forwarder.wait() == 0, forwarder.log()

    received = await _statement_ids(second_database_url)
    assert sorted(received) == sorted(sent)
    assert "target unavailable" not in forwarder.log()
    assert await _dead_letters(nats_control.url, "to-shedding") == []


async def test_filters_dead_letters_and_replay(service_factory, nats_control, database_url, tmp_path):
    source = service_factory(nats_control.url)
    await source.start()
    connection = await asyncpg.connect(database_url)
    try:
        await insert_credential(connection, key="other", secret_hash=hash_secret("other-secret"), tenant="other",
                                scopes=["all"], name="other")
    finally:
        await connection.close()

    wanted = _batch(0, 30, verb=VERB_PASSED, activity=UNIT + "1")
    other_verb = _batch(100, 10, verb=VERB_EXPERIENCED, activity=UNIT + "1")
    other_activity = _batch(200, 10, verb=VERB_PASSED, activity=UNIT + "2")
    other_tenant = _batch(300, 5, verb=VERB_PASSED, activity=UNIT + "1")
    await _post(source.base_url, wanted[:10] + other_verb + other_activity)
    await _post(source.base_url, other_tenant, "other", "other-secret")
    await _post(source.base_url, wanted[10:])
    wanted_ids = [s["id"] for s in wanted]
    total = len(wanted) + len(other_verb) + len(other_activity) + len(other_tenant)
    refused, failing = wanted_ids[4], wanted_ids[17]

    target = FakeLrs("target", "target-secret")
    target.reject_ids[refused] = "verb not allowed here"
    target.fail_ids.add(failing)
    await target.start()
    try:
        forwarder = Forwarder(
            ["--to", target.url, "--key", "target", "--secret", "target-secret", "--name", "filtered",
             "--nats-url", nats_control.url, "--verb", VERB_PASSED, "--activity", UNIT + "1",
             "--activity", UNIT + "9", "--tenant", "default", "--max-deliveries", "2", "--retry-delay", "0.2",
             "--batch-size", "8", "--until-caught-up", "--no-progress", "--database-url", database_url],
            tmp_path / "forward.log", LRS_DATA_DIR=source.env["LRS_DATA_DIR"],
        )

        async def stream_has_all() -> bool:
            # The relay publishes asynchronously; forward once everything is in the stream.
            return await _stream_messages(nats_control.url) >= total

        await _eventually(stream_has_all, "the relay to publish every statement")
        await forwarder.start()
        assert await forwarder.wait() == 0, forwarder.log()

        assert set(target.statements) == set(wanted_ids) - {refused, failing}
        parked = await _dead_letters(nats_control.url, "filtered")
        by_id = {letter["statement_id"]: letter for letter in parked}
        assert set(by_id) == {refused, failing}
        assert by_id[refused]["status"] == 400 and "verb not allowed here" in by_id[refused]["error"]
        assert by_id[failing]["status"] == 500 and "internal error" in by_id[failing]["error"]
        assert by_id[failing]["deliveries"] == 2
        assert all(letter["tenant"] == "default" and letter["forwarder"] == "filtered" for letter in parked)

        # Replay while the target still fails: it stops, nothing is lost.
        replay = ["forward", "dead-letters", "replay", "--name", "filtered", "--nats-url", nats_control.url,
                  "--to", target.url, "--key", "target", "--secret", "target-secret", "--max-attempts", "2",
                  "--database-url", database_url]
        env = {**os.environ, "LRS_DATA_DIR": source.env["LRS_DATA_DIR"]}
        status, _, err = await _lrs_env(env, *replay)
        assert status == 1 and "stopped" in err and "HTTP 500" in err, err
        assert len(await _dead_letters(nats_control.url, "filtered")) == 2

        # Fixed target: replay delivers both and empties the dead-letter stream.
        target.reject_ids.clear()
        target.fail_ids.clear()
        status, _, err = await _lrs_env(env, *replay)
        assert status == 0 and "replayed 2" in err and "rejected 0" in err, err
        assert set(target.statements) == set(wanted_ids)
        # Parked as stored (sealed), sent opened, as everything forwarded.
        assert "sealed" not in json.dumps(list(target.statements.values()))
        assert {target.statements[i]["actor"]["mbox"] for i in (refused, failing)} == {
            s["actor"]["mbox"] for s in wanted if s["id"] in (refused, failing)}
        assert await _dead_letters(nats_control.url, "filtered") == []
    finally:
        await target.close()


async def _stream_messages(nats_url: str) -> int:
    import nats

    nc = await nats.connect(nats_url)
    try:
        info = await nc.jetstream().stream_info("LRS_EVENTS")
        return info.state.messages
    except Exception:  # the relay has not created the stream yet
        return 0
    finally:
        await nc.close()
