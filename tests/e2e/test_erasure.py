"""Erasing a learner on a real ``lrs serve`` (PostgreSQL, nats-server, relay,
projection, anchors) with personal data sealed (docs/privacy.md).

A learner on the roster, with a second identifier linked to them, with
statements under both (one of them with an attachment), State and Agent
Profile documents and a certification is erased with ``lrs erase learner``.
Afterwards no table (a pg_dump of the database, and each column searched),
no JetStream message and no anchor holds their identifiers or name in clear;
their statements read back with the erased actor; the unit totals leave them
out (LRS_ERASED_LEARNERS_IN_TOTALS's default, drop); ``lrs audit verify
--anchors`` passes; a replay of the competency projection gives the live
digest."""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import subprocess
import sys
import urllib.parse
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import nats
import pytest

from tests.e2e.conftest import xapi_headers
from tests.integration.competency_statements import MODULES as CERTIFYING
from tests.integration.competency_statements import course_statement
from lrs.payload_codec import open_payload

pytestmark = pytest.mark.slow

LAN = {"mbox": "mailto:lan.nguyen@example.gov.vn", "name": "Nguyễn Thị Lan"}
# Lan's account on the ministry's LMS, linked to her as a person.
LAN_LMS = {"account": {"homePage": "https://lms.example.gov.vn", "name": "ntlan.lms"}, "name": "Nguyễn Thị Lan"}
MINH = {"mbox": "mailto:cs7@example.gov.vn", "name": "Trần Văn Minh"}
# What must not be found anywhere in clear after the erasure.
NEEDLES = ("lan.nguyen@example.gov.vn", "Nguyễn Thị Lan", "Lan's certificate scan", "ntlan.lms")
ROSTER = {
    "units": [{"id": "mic", "kind": "ministry", "name": "Ministry"},
              {"id": "mic-dt", "parent": "mic", "kind": "agency", "name": "Digital Transformation"}],
    "memberships": [{"learner": f"mbox:{who['mbox']}", "unit": "mic-dt", "valid_from": "2025-01-01"} for who in (LAN, MINH)],
}
PROGRAM = "https://lrs.example.org/competency/programs/civil-servant-basic-digital-skills"
BOUNDARY = "erasure-boundary"


async def lrs(env: dict[str, str], *args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "lrs", *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), 120)
    return process.returncode or 0, out.decode() + err.decode()


def as_lan(statement: dict[str, Any]) -> dict[str, Any]:
    return {**statement, "actor": LAN}


def with_attachment(statement: dict[str, Any], data: bytes) -> tuple[bytes, dict[str, str]]:
    sha2 = hashlib.sha256(data).hexdigest()
    statement = {**statement, "attachments": [{
        "usageType": "http://id.tincanapi.com/attachment/certificate-of-completion",
        "display": {"en-US": "certificate"}, "contentType": "text/plain", "length": len(data), "sha2": sha2,
    }]}
    body = (
        f"--{BOUNDARY}\r\nContent-Type: application/json\r\n\r\n{json.dumps([statement])}\r\n"
        f"--{BOUNDARY}\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: binary\r\n"
        f"X-Experience-API-Hash: {sha2}\r\n\r\n"
    ).encode() + data + f"\r\n--{BOUNDARY}--\r\n".encode()
    return body, {**xapi_headers(), "Content-Type": f'multipart/mixed; boundary="{BOUNDARY}"'}


async def clear_text_hits(database_url: str, needles: tuple[str, ...]) -> list[str]:
    """``table.column`` of every value in the database holding a needle:
    text-like columns cast to text, bytea compared as bytes."""
    conn = await asyncpg.connect(database_url)
    try:
        columns = await conn.fetch(
            "SELECT table_name, column_name, data_type FROM information_schema.columns c"
            " JOIN information_schema.tables t USING (table_schema, table_name)"
            " WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE'"
        )
        assert len(columns) > 50  # the whole schema, not a few tables
        hits = []
        for column in columns:
            table, name = column["table_name"], column["column_name"]
            for needle in needles:
                if column["data_type"] == "bytea":
                    condition = f'position(convert_to($1, \'UTF8\') in "{name}") > 0'
                else:
                    condition = f'"{name}"::text LIKE \'%\' || $1 || \'%\''
                if await conn.fetchval(f'SELECT 1 FROM "{table}" WHERE {condition} LIMIT 1', needle):
                    hits.append(f"{table}.{name}: {needle}")
        return hits
    finally:
        await conn.close()


def dump_hits(database_url: str, needles: tuple[str, ...]) -> list[str]:
    """Needles in a pg_dump (plain text) of the whole database: text as it
    is, bytea as the hex COPY writes it."""
    import pgserver

    # The server's own pg_dump (the same major version), else the one on PATH.
    bundled = Path(pgserver.__file__).parent / "pginstall" / "bin" / "pg_dump"
    pg_dump = str(bundled) if bundled.exists() else shutil.which("pg_dump")
    assert pg_dump, "no pg_dump"
    done = subprocess.run([pg_dump, "--no-owner", "--dbname", database_url], capture_output=True)
    assert done.returncode == 0, done.stderr.decode()
    dump = done.stdout
    assert b"COPY public.events" in dump and b"COPY public.roster_memberships" in dump  # the data, not the schema only
    return [n for n in needles if n.encode() in dump or n.encode().hex().encode() in dump]


async def stream_hits(nats_url: str, needles: tuple[str, ...]) -> tuple[int, list[str]]:
    """(messages read, needles found in any message's data or headers)."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        info = await js.stream_info("LRS_EVENTS")
        hits = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            message = await js.get_msg("LRS_EVENTS", seq=seq)
            raw = (message.data or b"") + json.dumps(dict(message.headers or {})).encode()
            hits += [f"seq {seq}: {n}" for n in needles if n.encode() in raw]
        return info.state.messages, hits
    finally:
        await nc.close()


async def checkpoint(database_url: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetchval("SELECT position FROM projection_checkpoints WHERE name = 'competency'") or 0
    finally:
        await conn.close()


async def head(database_url: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetchval("SELECT position FROM log_head")
    finally:
        await conn.close()


async def caught_up(database_url: str) -> int:
    target = await head(database_url)
    for _ in range(600):
        if await checkpoint(database_url) >= target:
            return target
        await asyncio.sleep(0.1)
    raise AssertionError(f"projection stuck below {target}")


async def series_today(session: aiohttp.ClientSession, base: str) -> set[tuple[int, int]]:
    """(headcount, certified) of today's point of the unit's daily series, on both clocks."""
    today = datetime.now(timezone.utc).date().isoformat()
    found = set()
    for clock in ("achieved", "known"):
        url = (f"{base}/competency/units/mic-dt/series?program={urllib.parse.quote(PROGRAM)}"
               f"&from={today}&to={today}&interval=day&clock={clock}")
        async with session.get(url, headers=xapi_headers()) as r:
            assert r.status == 200, await r.text()
            [point] = (await r.json())["points"]
        found.add((point["headcount"], point["certified"]))
    return found


async def test_erased_learner_leaves_no_clear_text_and_the_audit_still_holds(
    database_url: str, nats_control: Any, service_factory: Any
) -> None:
    service = service_factory(
        nats_control.url, LRS_PROJECTIONS_ENABLED="true", LRS_SEAL_PERSONAL_DATA="true", LRS_ANCHOR_EVERY_EVENTS="5",
    )
    env = {**service.env, "LRS_LOG_LEVEL": "warning"}
    data_dir = Path(env["LRS_DATA_DIR"])
    await service.start()
    base = service.base_url
    lan_statements = [as_lan(course_statement(1, module, verb, minute)) for minute, (module, verb) in enumerate(CERTIFYING)]
    minh_statements = [{**course_statement(7, module, verb, minute), "actor": MINH}
                       for minute, (module, verb) in enumerate(CERTIFYING[:3])]
    # Minh's statement names Lan as instructor: her data under her key inside his statement.
    # Sent with objectType, her identities there are sealed in the v4 form:
    # their ciphertexts are kept apart, in sealed_identities.
    minh_statements[0]["context"] = {"instructor": {"objectType": "Agent", **LAN}}
    agent_param = urllib.parse.quote(json.dumps({"mbox": LAN["mbox"]}))
    lms_param = urllib.parse.quote(json.dumps({"account": LAN_LMS["account"]}))
    lms_key = f"account:{LAN_LMS['account']['homePage']}|{LAN_LMS['account']['name']}"
    summary_url = f"{base}/competency/units/mic-dt/summary?program={urllib.parse.quote(PROGRAM)}"
    async with aiohttp.ClientSession() as session:
        # Lan and Minh on the roster; Lan's LMS account linked to her.
        async with session.post(f"{base}/competency/admin/roster", json=ROSTER, headers=xapi_headers()) as r:
            assert r.status == 200, await r.text()
        async with session.post(f"{base}/competency/admin/identities", headers=xapi_headers(), json={
            "op": "link", "person": f"mbox:{LAN['mbox']}", "identifiers": [lms_key]}) as r:
            assert r.status == 200, await r.text()
            assert (await r.json())["identifiers"] == [f"mbox:{LAN['mbox']}", lms_key]  # answered in clear
        # One module's evidence also comes from the LMS account (it counts for Lan).
        from_lms = {**course_statement(1, *CERTIFYING[0], 99), "actor": {"objectType": "Agent", **LAN_LMS}}
        async with session.post(f"{base}/xapi/statements", json=[from_lms], headers=xapi_headers()) as r:
            assert r.status == 200, await r.text()
        async with session.post(f"{base}/xapi/statements", json=lan_statements[1:] + minh_statements,
                                headers=xapi_headers()) as r:
            assert r.status == 200, await r.text()
        body, headers = with_attachment(lan_statements[0], b"Lan's certificate scan: " + LAN["name"].encode())
        async with session.post(f"{base}/xapi/statements", data=body, headers=headers) as r:
            assert r.status == 200, await r.text()
        # The same statement again: "same statement", no conflict, nothing new.
        async with session.post(f"{base}/xapi/statements", json=[lan_statements[1]], headers=xapi_headers()) as r:
            assert r.status == 200, await r.text()
        for path, extra in (("activities/state", "&activityId=https://lms.example/course&stateId=bookmark"),
                            ("agents/profile", "&profileId=contact")):
            url = f"{base}/xapi/{path}?agent={agent_param}{extra}"
            async with session.put(url, data=json.dumps({"name": LAN["name"]}),
                                   headers={**xapi_headers(), "Content-Type": "application/json", "If-None-Match": "*"}) as r:
                assert r.status == 204, await r.text()
            async with session.get(url, headers=xapi_headers()) as r:
                assert r.status == 200 and (await r.json()) == {"name": LAN["name"]}
        # Reads open the sealed data: the agent filter finds Lan's statements and her instructing.
        async with session.get(f"{base}/xapi/statements?agent={agent_param}&related_agents=true&limit=50",
                               headers=xapi_headers()) as r:
            assert r.status == 200
            found = (await r.json())["statements"]
        assert len(found) == len(lan_statements) + 1
        assert {s["actor"]["name"] for s in found} == {LAN["name"], MINH["name"]}
        learner = urllib.parse.quote(f"mbox:{LAN['mbox']}", safe="")
        position = await caught_up(database_url)
        async with session.get(f"{base}/competency/learners/{learner}", headers=xapi_headers()) as r:
            assert r.status == 200, await r.text()
            before = await r.json()
        assert [c["earned"] for c in before["certifications"]] == [True], before  # Lan is certified
        assert before["learner"] == f"mbox:{LAN['mbox']}"  # officials' answers echo the identifier asked for
        assert before["person"] == f"mbox:{LAN['mbox']}"  # shown in clear to officials
        assert before["person_key"].startswith("account:https://lrs.invalid/pseudonym|")  # the projection knows a pseudonym
        async with session.get(summary_url, headers=xapi_headers()) as r:
            assert r.status == 200, await r.text()
            summary = await r.json()
        assert (summary["headcount"], summary["certified"]) == (2, 1)  # the sealed roster joins Lan's evidence
        assert await series_today(session, base) == {(2, 1)}  # the trend series ends on the summary's totals
        memberships_url = f"{base}/competency/admin/memberships?learner={urllib.parse.quote(ROSTER['memberships'][0]['learner'])}"
        async with session.get(memberships_url, headers=xapi_headers()) as r:
            assert r.status == 200, await r.text()
            [row] = (await r.json())["memberships"]
        # Stored by pseudonym; shown to the official in clear, opened from its sealed copy.
        assert row["learner"] == before["person_key"] and row["identifier"] == f"mbox:{LAN['mbox']}"

        # Nothing personal in clear reached the stream or the log, even before the erasure.
        conn = await asyncpg.connect(database_url)
        try:
            payloads = b"".join(open_payload(r["payload"]) for r in await conn.fetch("SELECT payload FROM events"))
        finally:
            await conn.close()
        assert not [n for n in NEEDLES[:2] if n.encode() in payloads]

        code, output = await lrs(env, "erase", "learner", json.dumps({"mbox": LAN["mbox"]}), "--tenant", "default",
                                 "--reason", "data subject request 2026-117")
        assert code == 0, output
        assert "2 document(s) and 1 attachment(s) deleted, 1 linked identifier(s) erased with it" in output, output
        code, output = await lrs(env, "erase", "learner", json.dumps({"mbox": LAN["mbox"]}), "--tenant", "default",
                                 "--reason", "again")
        assert code == 1 and "already erased" in output, output

        async with session.get(f"{base}/xapi/statements?agent={agent_param}&related_agents=true&limit=50",
                               headers=xapi_headers()) as r:
            assert r.status == 200
            after = (await r.json())["statements"]
        assert [s["id"] for s in after] == [s["id"] for s in found]
        erased = [s for s in after if s["actor"].get("account", {}).get("homePage") == "https://lrs.invalid/erased"]
        assert len(erased) == len(lan_statements)
        assert erased[0]["actor"] == {"objectType": "Agent",
                                      "account": {"homePage": "https://lrs.invalid/erased", "name": erased[0]["actor"]["account"]["name"]}}
        async with session.get(f"{base}/xapi/statements?agent={lms_param}", headers=xapi_headers()) as r:
            assert r.status == 200
            [lms_after] = (await r.json())["statements"]
        assert lms_after["actor"]["account"]["homePage"] == "https://lrs.invalid/erased"  # linked: erased with her
        instructed = next(s for s in after if s["actor"].get("name") == MINH["name"])
        assert instructed["context"]["instructor"]["account"]["homePage"] == "https://lrs.invalid/erased"
        for path, extra in (("activities/state", "&activityId=https://lms.example/course&stateId=bookmark"),
                            ("agents/profile", "&profileId=contact")):
            async with session.get(f"{base}/xapi/{path}?agent={agent_param}{extra}", headers=xapi_headers()) as r:
                assert r.status == 404
        position = await caught_up(database_url)
        async with session.get(f"{base}/competency/learners/{learner}", headers=xapi_headers()) as r:
            assert r.status == 200, await r.text()
            now = await r.json()
        # The programme keeps the (now anonymous) learner's record ...
        assert (now["frameworks"], now["certifications"]) == (before["frameworks"], before["certifications"])
        assert (now["learner"], now["person"], now["erased"]) == (None, None, True)  # nothing of her in clear
        # ... and, by default (LRS_ERASED_LEARNERS_IN_TOTALS=drop), no longer counts her in the unit totals.
        async with session.get(summary_url, headers=xapi_headers()) as r:
            assert r.status == 200, await r.text()
            summary = await r.json()
        assert (summary["headcount"], summary["certified"]) == (1, 0)
        assert await series_today(session, base) == {(1, 0)}  # ... nor in the unit's series, on either clock
        async with session.get(memberships_url, headers=xapi_headers()) as r:
            assert r.status == 200, await r.text()
            [row] = (await r.json())["memberships"]
        assert row["learner"] == before["person_key"] and row["identifier"] is None  # erased: unreadable for good
    await service.stop()

    assert await clear_text_hits(database_url, NEEDLES) == []
    assert dump_hits(database_url, NEEDLES) == []
    # Identities sent with objectType were sealed in the v4 form, so the dump
    # and the columns searched above included their ciphertexts in
    # sealed_identities, which stay and open
    # nothing without her key: the GETs above read them (her LMS account as
    # actor, her as instructor) and showed the erased form.
    conn = await asyncpg.connect(database_url)
    try:
        # the authority's, and Lan's as instructor and as her LMS account
        assert await conn.fetchval("SELECT count(*) FROM sealed_identities") >= 3
        payloads = b"".join(open_payload(r["payload"]) for r in await conn.fetch("SELECT payload FROM events"))
        assert b'"sealed":"v4.' in payloads
    finally:
        await conn.close()
    assert await clear_text_hits(database_url, (MINH["name"],)) == []  # sealed, not erased: no clear copy either
    messages, hits = await stream_hits(nats_control.url, NEEDLES)
    assert messages == position and hits == []
    anchors = (data_dir / "anchors.jsonl").read_text()
    assert anchors and not [n for n in NEEDLES if n in anchors]
    assert not [n for n in NEEDLES if n in Path(service.log_path).read_text()]

    code, output = await lrs(env, "audit", "verify", "--anchors", str(data_dir / "anchors.jsonl"))
    assert code == 0 and "matches all" in output, output
    code, output = await lrs(env, "audit", "digest", "competency")
    assert code == 0, output
    live = output.strip().splitlines()[-1]
    code, output = await lrs(env, "replay", "competency")
    assert code == 0, output
    code, output = await lrs(env, "audit", "digest", "competency")
    assert code == 0 and output.strip().splitlines()[-1] == live, output
