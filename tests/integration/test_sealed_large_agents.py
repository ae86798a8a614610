"""Agents far larger than any cache entry (a name or an account name of
70,000 characters, which a 20 MB body may hold) are sealed, stored and opened
like any other, the first time and once their forms are known (a cache of
records under 64 KiB, tried on branch seal5, raised on them)."""

from __future__ import annotations

import os
import uuid
from typing import Any

import asyncpg

from lrs.payload_codec import open_payload
from lrs.privacy import seal
from lrs.privacy.master import MasterKey
from lrs.store import StatementWriter
from lrs.store.learner_keys import LearnerKeys
from tests.integration.test_sealed_every_place import _append

HUGE = 70_000


def _statement(actor: dict[str, Any]) -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "actor": actor, "verb": {"id": "http://adlnet.gov/expapi/verbs/attempted"},
            "object": {"id": "https://lms.example.vn/courses/ky-nang-so"}}


async def test_agents_larger_than_a_cache_entry_are_sealed_and_opened(pool: asyncpg.Pool, writer: StatementWriter) -> None:
    master = MasterKey(os.urandom(32))
    keyring = LearnerKeys(pool, master)
    await keyring.load_epoch()
    named = {"objectType": "Agent", "mbox": "mailto:ten.dai@example.vn", "name": "Nguyễn " + "A" * HUGE}
    account = {"objectType": "Agent", "account": {"homePage": "https://lms.example.vn", "name": "u" * HUGE}}
    sent = [_statement(named), _statement(account)]
    await _append(writer, keyring, "default", sent)
    again = [_statement(named), _statement(account)]  # the same Agents: their forms known now
    await _append(writer, keyring, "default", again)
    rows = await pool.fetch("SELECT payload FROM events WHERE event_type = 'statement' ORDER BY position")
    payloads = [open_payload(r["payload"]) for r in rows]
    assert len(payloads) == 4
    for payload in payloads:
        assert "A" * 100 not in payload.decode() and "u" * 100 not in payload.decode()
    opened = [seal.decode(p) for p in await LearnerKeys(pool, master).open_payloads("default", payloads)]
    assert [o["actor"] for o in opened] == [named, account, named, account]
