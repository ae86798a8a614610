"""``lrs export`` against the real LRS, and the round trip through ``lrs import``.

* Export from one LRS (including a voided statement and the statement voiding
  it, and statements of two tenants), import the file into a second LRS: the
  second LRS holds the same statements, in the same order, with the same ids,
  timestamps and voiding; only ``stored`` and ``authority`` are its own.
  A statement stored through xAPI 2.0 is imported through 2.0 again.
* ``--since``/``--until`` select by ``stored`` (exclusive/inclusive), and
  ``--tenant`` by tenant; stdout and ``--output FILE.gz`` carry the same lines.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import sys
from typing import Any, AsyncIterator

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from lrs.auth import hash_secret
from lrs.config import Settings
from lrs.payload_codec import open_payload
from lrs.service import create_app
from lrs.store.credentials import insert_credential
from tests.e2e.conftest import KEY, SECRET, xapi_headers
from tests.e2e.statements import VERB_VOIDED, statement, voiding

OTHER_KEY, OTHER_SECRET = "other-tenant-key", "other-tenant-secret"


@pytest.fixture
async def client(clear_client: TestClient) -> TestClient:
    """The source LRS in clear: these tests compare the export with the stored
    events byte for byte (an export of sealed Statements opens them:
    test_export_of_a_sealed_store_opens_every_form)."""
    return clear_client


@pytest.fixture
async def target(second_database_url: str) -> AsyncIterator[TestClient]:
    """A second LRS, in process, on a real port the import subprocess can reach
    (in clear, so the imported events can be compared with the source's)."""
    settings = Settings(database_url=second_database_url, nats_url=None, relay_enabled=False,
                        bootstrap_credential=f"{KEY}:{SECRET}", seal_personal_data=False)
    app = create_app(settings, database_url=second_database_url, nats_url=None)
    async with TestServer(app, host="127.0.0.1") as server, TestClient(server) as test_client:
        yield test_client


async def _post(client: TestClient, body: Any, key: str = KEY, secret: str = SECRET) -> list[str]:
    response = await client.post("/xapi/statements", json=body, headers=xapi_headers(key=key, secret=secret))
    assert response.status == 200, await response.text()
    return await response.json()


async def _events(database_url: str) -> list[dict]:
    """The statement events, each payload as its canonical JSON (the log may keep it compressed)."""
    connection = await asyncpg.connect(database_url)
    try:
        rows = await connection.fetch(
            "SELECT position, tenant, stored, payload FROM events WHERE event_type = 'statement' ORDER BY position"
        )
    finally:
        await connection.close()
    return [{**row, "payload": open_payload(row["payload"])} for row in rows]


async def _voided_ids(database_url: str) -> set[str]:
    connection = await asyncpg.connect(database_url)
    try:
        rows = await connection.fetch("SELECT statement_id FROM statements WHERE voided")
    finally:
        await connection.close()
    return {str(row["statement_id"]) for row in rows}


async def _lrs(*args: str, env: dict[str, str] | None = None) -> tuple[int, bytes, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "lrs", *args, env={**os.environ, **(env or {})},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    return process.returncode, out, err.decode()


def _without_lrs_fields(statement: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in statement.items() if k not in ("stored", "authority")}


async def _fill_source(client: TestClient, database_url: str) -> dict[str, str]:
    """Statements in two tenants, one of them voided; returns named ids."""
    connection = await asyncpg.connect(database_url)
    try:
        await insert_credential(connection, key=OTHER_KEY, secret_hash=hash_secret(OTHER_SECRET),
                                tenant="other", scopes=["all"], name="other")
    finally:
        await connection.close()
    ids: dict[str, str] = {}
    for n in range(5):  # several requests, several stored times
        body = [statement(learner=f"l{n}-{i}@example.org", score=(n * 10 + i) / 100) for i in range(20)]
        body[0]["timestamp"] = "2024-05-06T07:08:09.123Z"
        await _post(client, body)
    ids["voided"] = (await _post(client, statement(learner="oops@example.org")))[0]
    ids["voiding"] = (await _post(client, voiding(ids["voided"])))[0]
    ids["other"] = (await _post(client, statement(learner="elsewhere@example.org"), OTHER_KEY, OTHER_SECRET))[0]
    await _post(client, [statement(learner=f"late{i}@example.org") for i in range(7)])
    response = await client.post("/xapi/statements", json=statement(learner="v2@example.org"),
                                 headers=xapi_headers("2.0.0"))
    assert response.status == 200, await response.text()
    ids["2.0"] = (await response.json())[0]
    return ids


async def test_export_then_import_into_another_lrs_gives_the_same_statements(
    client, database_url, target, second_database_url, tmp_path
):
    ids = await _fill_source(client, database_url)
    source_events = await _events(database_url)
    assert len(source_events) == 5 * 20 + 2 + 1 + 7 + 1

    path = tmp_path / "export.ndjson.gz"
    status, out, err = await _lrs("export", "--output", str(path), "--page-size", "7",
                                  env={"LRS_DATABASE_URL": database_url, "LRS_PRIVACY_KEY_FILE": str(tmp_path / "privacy-key")})
    assert status == 0, err
    assert out == b""
    assert f"exported {len(source_events)} statement(s)" in err
    with gzip.open(path, "rb") as handle:
        lines = handle.read().splitlines()
    assert lines == [bytes(row["payload"]) for row in source_events]  # stored order, exactly as stored
    assert not list(tmp_path.glob("*.partial"))

    status, out, _ = await _lrs("export", env={"LRS_DATABASE_URL": database_url, "LRS_PRIVACY_KEY_FILE": str(tmp_path / "privacy-key")})
    assert status == 0 and out.splitlines() == lines  # stdout carries the same lines

    base = str(target.server.make_url("")).rstrip("/")
    status, _, err = await _lrs("import", str(path), "--to", base, "--key", KEY, "--secret", SECRET,
                                "--batch-size", "10", "--checkpoint", str(tmp_path / "cp.json"), "--no-progress")
    assert status == 0, err

    target_events = await _events(second_database_url)
    exported = [json.loads(line) for line in lines]
    imported = [json.loads(bytes(row["payload"])) for row in target_events]
    assert [s["id"] for s in imported] == [s["id"] for s in exported]
    assert [_without_lrs_fields(s) for s in imported] == [_without_lrs_fields(s) for s in exported]
    other_exported = next(s for s in exported if s["id"] == ids["other"])
    other_imported = next(s for s in imported if s["id"] == ids["other"])
    assert other_imported["authority"] != other_exported["authority"]  # the importing credential's
    assert await _voided_ids(second_database_url) == await _voided_ids(database_url) == {ids["voided"]}
    assert next(s for s in imported if s["id"] == ids["2.0"])["version"] == "2.0.0"
    voiding_line = next(s for s in imported if s["id"] == ids["voiding"])
    assert voiding_line["verb"]["id"] == VERB_VOIDED

    # Importing the same file again stores nothing new.
    status, _, err = await _lrs("import", str(path), "--to", base, "--key", KEY, "--secret", SECRET,
                                "--restart", "--checkpoint", str(tmp_path / "cp.json"), "--no-progress")
    assert status == 0, err
    assert len(await _events(second_database_url)) == len(source_events)


async def test_export_selects_by_stored_time_and_tenant(client, database_url, tmp_path):
    ids = await _fill_source(client, database_url)
    events = await _events(database_url)
    env = {"LRS_DATABASE_URL": database_url, "LRS_PRIVACY_KEY_FILE": str(tmp_path / "privacy-key")}

    since, until = events[19]["stored"], events[101]["stored"]
    status, out, err = await _lrs("export", "--since", since.isoformat(), "--until", until.isoformat(), env=env)
    assert status == 0, err
    assert out.splitlines() == [bytes(row["payload"]) for row in events[20:102]]

    status, out, err = await _lrs("export", "--tenant", "other", env=env)
    assert status == 0, err
    assert [json.loads(line)["id"] for line in out.splitlines()] == [ids["other"]]

    status, out, err = await _lrs("export", "--tenant", "default", "--since", events[-1]["stored"].isoformat(),
                                  env=env)
    assert status == 0 and out == b"" and "exported 0 statement(s)" in err

    status, _, err = await _lrs("export", "--since", "yesterday", env=env)
    assert status == 2 and "not an ISO 8601 time" in err


async def test_export_of_a_sealed_store_opens_every_form(sealed_client, database_url, tmp_path):
    # Agents sent with objectType are sealed in the v4 form (their ciphertexts
    # in sealed_identities), without it in v1; the authority is v4 too.  An
    # export opens them all, as GET /xapi/statements does, in the log's order.
    first = statement(learner="with-type@example.org")
    first["actor"] = {"objectType": "Agent", **first["actor"], "name": "Lan"}
    second = statement(learner="without-type@example.org")
    second["actor"] = {k: v for k, v in second["actor"].items() if k != "objectType"}
    ids = await _post(sealed_client, [first, second])
    events = await _events(database_url)
    assert b'"sealed":"v4.' in events[0]["payload"] and b'"sealed":"v1.' in events[1]["payload"]
    env = {"LRS_DATABASE_URL": database_url, "LRS_PRIVACY_KEY_FILE": str(tmp_path / "privacy-key")}
    status, out, err = await _lrs("export", env=env)
    assert status == 0, err
    exported = [json.loads(line) for line in out.splitlines()]
    response = await sealed_client.get("/xapi/statements", params={"ascending": "true"}, headers=xapi_headers())
    assert response.status == 200
    assert exported == (await response.json())["statements"]
    assert [s["id"] for s in exported] == ids
    assert exported[0]["actor"] == first["actor"] and exported[1]["actor"] == second["actor"]
    assert "sealed" not in out.decode() and "lrs.invalid" not in out.decode()
