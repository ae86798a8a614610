"""Every place an Agent or Group can stand in an xAPI Statement (actor,
object, authority, context instructor and team, 2.0 contextAgents and
contextGroups, the same inside a SubStatement, Group members; identified
and anonymous Groups; mbox, mbox_sha1sum, openid and account; names) is
stored sealed: written by a process with nothing cached (every Agent waits
for its key) and again with every form known (names changed, a new
learner among known ones), in two tenants, and after an erasure.  A pg_dump
of the database then holds none of it in clear, and every Statement opens
back to what was sent (docs/privacy.md)."""

from __future__ import annotations

import os
import uuid
from typing import Any

import asyncpg

from lrs.ingest.prepare import prepare_statements
from lrs.payload_codec import open_payload
from lrs.privacy import opening, seal, statement_agents
from lrs.privacy.master import MasterKey
from lrs.store import StatementWriter
from lrs.store.erasure import erase_learner
from lrs.store.learner_keys import LearnerKeys
from tests.e2e.test_erasure import dump_hits

AUTHORITY = {"objectType": "Group", "member": [
    {"objectType": "Agent", "account": {"homePage": "https://lrs.example", "name": "client-app-7"}},
    {"objectType": "Agent", "mbox": "mailto:owner.q@example.vn", "name": "Phạm Quý"},
]}


def _people(tag: str) -> dict[str, Any]:
    """One Agent or Group per place, each named and identified its own way."""
    return {
        "actor": {"objectType": "Group", "mbox": f"mailto:actor.team.{tag}@example.vn", "name": f"Đội Hành {tag}",
                  "member": [{"objectType": "Agent", "mbox": f"mailto:member.a.{tag}@example.vn",
                              "name": f"Lê Thành {tag}"},
                             {"openid": f"https://id.example.vn/member-b-{tag}", "name": f"Võ Bình {tag}"}]},
        "object": {"objectType": "Agent", "mbox_sha1sum": f"{tag}".ljust(40, "c")[:40],
                   "name": f"Đặng Khoa {tag}"},
        "instructor": {"account": {"homePage": "https://lms.example.vn", "name": f"gv-hung-{tag}"},
                       "name": f"Thầy Hùng {tag}"},
        "team": {"objectType": "Group", "name": f"Nhóm Vô Danh {tag}",
                 "member": [{"objectType": "Agent", "mbox": f"mailto:anon.m.{tag}@example.vn", "name": f"Cao Mai {tag}"}]},
        "team_unnamed": {"objectType": "Group",
                         "member": [{"objectType": "Agent", "account": {"homePage": "https://lms.example.vn",
                                                                        "name": f"unnamed-m-{tag}"}}]},
        "context_agent": {"objectType": "Agent", "mbox": f"mailto:ctx.agent.{tag}@example.vn", "name": f"Hồ Xuân {tag}"},
        "context_group": {"objectType": "Group", "openid": f"https://id.example.vn/ctx-group-{tag}",
                          "name": f"Lớp Chiều {tag}"},
        "sub_actor": {"objectType": "Agent", "mbox": f"mailto:sub.actor.{tag}@example.vn", "name": f"Trịnh Sơn {tag}"},
        "sub_object": {"objectType": "Group", "account": {"homePage": "https://lms.example.vn", "name": f"sub-grp-{tag}"},
                       "name": f"Tổ Phụ {tag}", "member": [{"mbox": f"mailto:sub.member.{tag}@example.vn"}]},
        "sub_instructor": {"objectType": "Agent", "openid": f"https://id.example.vn/sub-instructor-{tag}",
                           "name": f"Cô Nga {tag}"},
        "sub_team": {"objectType": "Group", "mbox": f"mailto:sub.team.{tag}@example.vn", "name": f"Nhóm Con {tag}"},
    }


def _context(p: dict[str, Any], instructor: str, team: str, agent: str, group: str) -> dict[str, Any]:
    return {"instructor": p[instructor], "team": p[team],
            "contextAgents": [{"objectType": "contextAgent", "agent": p[agent],
                               "relevantTypes": ["https://example.org/types/mentor"]}],
            "contextGroups": [{"objectType": "contextGroup", "group": p[group]}]}


def _statements(p: dict[str, Any]) -> list[dict[str, Any]]:
    verb = {"id": "http://adlnet.gov/expapi/verbs/mentored"}
    return [
        {"id": str(uuid.uuid4()), "actor": p["actor"], "verb": verb, "object": p["object"],
         "context": _context(p, "instructor", "team", "context_agent", "context_group")},
        {"id": str(uuid.uuid4()), "actor": p["object"], "verb": verb,
         "object": {"objectType": "SubStatement", "actor": p["sub_actor"], "verb": verb, "object": p["sub_object"],
                    "context": {**_context(p, "sub_instructor", "sub_team", "instructor", "context_group"),
                                "registration": "ec531277-b57b-4c15-8d91-d292c5b2b8f7"}},
         "context": _context(p, "context_agent", "team_unnamed", "sub_actor", "actor")},
        {"id": str(uuid.uuid4()), "actor": p["instructor"], "verb": verb, "object": p["team"]},
    ]


def _renamed(people: dict[str, Any]) -> dict[str, Any]:
    """The same identities under other names (each Agent and member)."""
    def rename(agent: dict[str, Any]) -> dict[str, Any]:
        agent = {**agent, "name": "Tên Khác " + agent.get("name", "")}
        if "member" in agent:
            agent["member"] = [rename(m) for m in agent["member"]]
        return agent

    return {place: rename(agent) for place, agent in people.items()}


def _needles(people: dict[str, Any]) -> set[str]:
    found: set[str] = set()

    def visit(value: Any) -> None:
        if isinstance(value, dict):
            for name, inner in value.items():
                if name in ("mbox", "mbox_sha1sum", "openid", "name"):
                    found.add(inner.removeprefix("mailto:"))
                elif name == "homePage" or name == "objectType":
                    continue
                else:
                    visit(inner)
        elif isinstance(value, list):
            for inner in value:
                visit(inner)

    visit(people)
    return found


async def _append(writer: StatementWriter, keyring: LearnerKeys, tenant: str, statements: list[dict]) -> None:
    sealed = await keyring.seal_statements(tenant, statements, AUTHORITY)
    prepared = prepare_statements(sealed.statements, version="2.0.0", authority=sealed.authority, new_id=uuid.uuid4)
    await writer.append(tenant, prepared, key_epoch=sealed.epoch, key_refs=sealed.refs, ciphertexts=sealed.ciphertexts)
    keyring.stored(sealed)


def _every_identity_sealed(agent: dict[str, Any]) -> None:
    """A stored Agent/Group: a sealed form (no placeholder left), its
    members too."""
    assert agent.get("objectType") in ("Agent", "Group"), agent
    if agent.get("account", {}).get("homePage") != seal.PSEUDONYM_HOME:
        assert "account" not in agent and agent["objectType"] == "Group", agent
    assert set(agent) <= {"objectType", "account", "sealed", "member"}, agent
    assert "sealed" in agent or ("member" in agent and "account" not in agent), agent
    for member in agent.get("member", ()):
        _every_identity_sealed(member)


async def test_no_agent_anywhere_in_a_statement_is_stored_in_clear(
    pool: asyncpg.Pool, writer: StatementWriter, database_url: str
) -> None:
    master = MasterKey(os.urandom(32))
    cold = LearnerKeys(pool, master)
    await cold.load_epoch()
    one, two = _people("a1"), _people("b2")
    sent = {"default": _statements(one)}
    await _append(writer, cold, "default", sent["default"])  # nothing cached: every Agent waits for its key
    # Known forms and keys, the same identities named otherwise, and a new learner among them.
    again = _statements(_renamed(one)) + _statements(one)
    again[0] = {**again[0], "context": {**again[0]["context"], "instructor": two["sub_actor"]}}
    await _append(writer, cold, "default", again)
    sent["default"] += again
    sent["other"] = _statements(one) + _statements(two)  # the same identities in another tenant
    await _append(writer, cold, "other", sent["other"])

    rows = await pool.fetch("SELECT tenant, payload FROM events WHERE event_type = 'statement' ORDER BY position")
    assert len(rows) == sum(len(s) for s in sent.values())
    by_tenant: dict[str, list[bytes]] = {}
    for row in rows:
        by_tenant.setdefault(row["tenant"], []).append(open_payload(row["payload"]))
    forms: dict[str, set[str]] = {}
    for tenant, payloads in by_tenant.items():
        for payload in payloads:
            stored = seal.decode(payload)
            for container, name in statement_agents.agent_slots(stored):
                if name in container:
                    _every_identity_sealed(container[name])
        opened = [seal.decode(p) for p in await LearnerKeys(pool, master).open_payloads(tenant, payloads)]
        for was, now in zip(sent[tenant], opened):
            assert {k: v for k, v in now.items() if k not in ("stored", "authority", "version", "timestamp")} == was
            assert now["authority"] == AUTHORITY
        forms[tenant] = {form["account"]["name"] for p in payloads
                         for _, form in opening._sealed_texts(seal.decode(p)) if "account" in form}
    assert forms["default"] and forms["other"] and not forms["default"] & forms["other"]  # no pseudonym shared

    needles = _needles({**one, **{f"two-{k}": v for k, v in two.items()}, "authority": AUTHORITY})
    needles |= _needles(_renamed(one))
    assert len(needles) > 40
    assert dump_hits(database_url, tuple(sorted(needles))) == []

    # After an erasure, a warm process seals the erased learner under a new key, never an old form.
    learner = one["sub_actor"]
    await erase_learner(pool, LearnerKeys(pool, master), "default", learner, reason="request 12", by="test")
    late = [{**_statements(one)[1], "id": str(uuid.uuid4())}]
    cold.catch_up(await pool.fetchval("SELECT key_epoch FROM log_head"))
    await _append(writer, cold, "default", late)
    [payload] = [open_payload(r["payload"]) for r in await pool.fetch(
        "SELECT payload FROM events WHERE statement_id = $1", uuid.UUID(late[0]["id"]))]
    [opened] = await LearnerKeys(pool, master).open_payloads("default", [payload])
    assert seal.decode(opened)["object"]["actor"] == learner
    assert dump_hits(database_url, tuple(sorted(needles))) == []
