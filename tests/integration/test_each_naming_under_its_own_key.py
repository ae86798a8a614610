"""A Statement naming several people holds each naming sealed under the key
of the person it names (v4, a Group's members too), not the actor's:
erasing the instructor leaves the actor and a team member readable, erasing
the actor then leaves the member readable, and every erased naming opens to
the erased form, in a process that had all of them cached and in a new one
(docs/privacy.md)."""

from __future__ import annotations

import os
import uuid

import asyncpg

from lrs.privacy import seal
from lrs.privacy.master import MasterKey
from lrs.store import StatementWriter
from lrs.store.erasure import erase_learner
from lrs.store.learner_keys import LearnerKeys
from lrs.store.reader import get_statement
from tests.integration.test_learner_keys import TENANT, append

MINH = {"objectType": "Agent", "mbox": "mailto:minh@example.com", "name": "Minh"}
LAN = {"objectType": "Agent", "mbox": "mailto:lan@example.com", "name": "Lan"}
HOA = {"objectType": "Agent", "mbox": "mailto:hoa@example.com", "name": "Hoa"}
TEAM = {"objectType": "Group", "account": {"homePage": "https://lms.example", "name": "team-7"}, "name": "Team 7",
        "member": [HOA]}


def lesson() -> dict:
    return {"id": str(uuid.uuid4()), "actor": MINH, "verb": {"id": "http://adlnet.gov/expapi/verbs/attended"},
            "object": {"id": "https://lms.example/lesson"}, "context": {"instructor": LAN, "team": TEAM}}


async def _opened(pool: asyncpg.Pool, keyring: LearnerKeys, ids: list[str]) -> list[dict]:
    stored = [await get_statement(pool, TENANT, uuid.UUID(i), voided=False) for i in ids]
    return [seal.decode(p) for p in await keyring.open_payloads(TENANT, stored)]


def _erased(keyring: LearnerKeys, agent: dict) -> dict:
    return {"objectType": agent["objectType"],
            "account": {"homePage": seal.ERASED_HOME, "name": keyring.pseudonym(TENANT, f"mbox:{agent['mbox']}")}}


async def test_each_naming_inside_a_statement_is_under_its_own_persons_key(
    pool: asyncpg.Pool, writer: StatementWriter
) -> None:
    master = MasterKey(os.urandom(32))
    keyring = LearnerKeys(pool, master)
    await keyring.load_epoch()
    first, again = lesson(), lesson()
    await append(writer, keyring, [first])  # every naming met for the first time
    await append(writer, keyring, [again])  # met again: its forms cached
    stored = seal.decode(await get_statement(pool, TENANT, uuid.UUID(first["id"]), voided=False))
    sealed = [stored["actor"], stored["context"]["instructor"], stored["context"]["team"]["member"][0]]
    assert [s["sealed"][:5] for s in sealed] == ["v4.1.", "v4.1.", "v4.1."]
    assert len({s["account"]["name"] for s in sealed}) == 3  # three people, three pseudonyms
    assert b'"sealed":"v4.1.' in await get_statement(pool, TENANT, uuid.UUID(again["id"]), voided=False)
    for opened in await _opened(pool, LearnerKeys(pool, master), [first["id"], again["id"]]):
        assert (opened["actor"], opened["context"]["instructor"], opened["context"]["team"]) == (MINH, LAN, TEAM)

    await erase_learner(pool, LearnerKeys(pool, master), TENANT, {"mbox": LAN["mbox"]}, reason="request 41", by="test")
    keyring.catch_up(await pool.fetchval("SELECT key_epoch FROM log_head"))  # as its listener hears it
    for reader in (keyring, LearnerKeys(pool, master)):
        for opened in await _opened(pool, reader, [first["id"], again["id"]]):
            assert opened["context"]["instructor"] == _erased(keyring, LAN)
            assert opened["actor"] == MINH and opened["context"]["team"]["member"] == [HOA]

    await erase_learner(pool, LearnerKeys(pool, master), TENANT, {"mbox": MINH["mbox"]}, reason="request 42", by="test")
    keyring.catch_up(await pool.fetchval("SELECT key_epoch FROM log_head"))
    for reader in (keyring, LearnerKeys(pool, master)):
        for opened in await _opened(pool, reader, [first["id"], again["id"]]):
            assert opened["actor"] == _erased(keyring, MINH)
            assert opened["context"]["instructor"] == _erased(keyring, LAN)
            assert opened["context"]["team"]["member"] == [HOA]
            assert opened["context"]["team"]["name"] == TEAM["name"]
