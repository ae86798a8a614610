"""Walks of an agent's keys in statement_keys that take only its latest rows
(the Person of GET /xapi/agents, the names an erasure's reason may not
contain): a Statement that refers to one of the learner's holds the
learner's key too (lrs/store/ref_keys.py), at its own position, without
naming them.  Such rows must not use up the walk, or the learner's own
Statements behind them are never read."""

from __future__ import annotations

import os
import uuid

import asyncpg
import pytest

from lrs.ingest.prepare import prepare_statements
from lrs.privacy.master import MasterKey
from lrs.store import StatementWriter
from lrs.store.activities import agent_names
from lrs.store.erasure import ErasureRefused, erase_learner
from lrs.store.learner_keys import LearnerKeys
from lrs.store.statement_identities import identities_in_statements
from tests.statements import new_id, statement

TENANT = "default"
AUTHORITY = {"objectType": "Agent", "account": {"homePage": "http://lrs.example", "name": "client"}}
LEARNER = {"objectType": "Agent", "mbox": "mailto:hv4512@example.com", "name": "Nguyễn Thị Bình"}
TEACHER = {"objectType": "Agent", "mbox": "mailto:teacher@example.com", "name": "Teacher"}
COMMENTED = "http://adlnet.gov/expapi/verbs/commented"


async def append(writer: StatementWriter, keyring: LearnerKeys, statements: list[dict]) -> None:
    sealed = await keyring.seal_statements(TENANT, statements, AUTHORITY)
    prepared = prepare_statements(sealed.statements, version="1.0.3", authority=sealed.authority, new_id=uuid.uuid4)
    await writer.append(TENANT, prepared, key_epoch=sealed.epoch, key_refs=sealed.refs,
                        ciphertexts=sealed.ciphertexts)
    keyring.stored(sealed)


async def learner_then_comments(writer: StatementWriter, keyring: LearnerKeys, comments: int) -> None:
    """One Statement of the learner, then ``comments`` of a teacher referring to it."""
    own = {**statement(statement_id=new_id(), activity="http://example.com/a"), "actor": dict(LEARNER)}
    await append(writer, keyring, [own])
    await append(writer, keyring, [
        {**statement(statement_id=new_id(), verb=COMMENTED), "actor": dict(TEACHER),
         "object": {"objectType": "StatementRef", "id": own["id"]}}
        for _ in range(comments)
    ])


@pytest.fixture
async def keyring(pool: asyncpg.Pool) -> LearnerKeys:
    keys = LearnerKeys(pool, MasterKey(os.urandom(32)))
    await keys.load_epoch()
    return keys


async def test_the_person_of_an_agent_keeps_its_name_behind_statements_referring_to_theirs(
    pool: asyncpg.Pool, writer: StatementWriter, keyring: LearnerKeys
) -> None:
    await learner_then_comments(writer, keyring, 3)
    assert await agent_names(pool, TENANT, "mbox:mailto:hv4512@example.com", limit=2, learner_keys=keyring) == [
        "Nguyễn Thị Bình"]


async def test_a_learner_is_found_in_their_own_statement_behind_statements_referring_to_it(
    pool: asyncpg.Pool, writer: StatementWriter, keyring: LearnerKeys
) -> None:
    await learner_then_comments(writer, keyring, 2)
    key = keyring.pseudonym_key(TENANT, "mbox:mailto:hv4512@example.com")
    found = await identities_in_statements(pool, keyring, TENANT, [key])
    assert found[key].identifier == "mbox:mailto:hv4512@example.com"
    assert found[key].names == ["Nguyễn Thị Bình"]


async def test_an_erasure_reason_naming_the_learner_is_refused_behind_statements_referring_to_theirs(
    pool: asyncpg.Pool, writer: StatementWriter, keyring: LearnerKeys
) -> None:
    # 20 comments: as many as the latest Statements an erasure reads names from
    await learner_then_comments(writer, keyring, 20)
    with pytest.raises(ErasureRefused) as refused:
        await erase_learner(pool, keyring, TENANT, {"mbox": "mailto:hv4512@example.com"},
                            reason="Bình asked on 3 May", by="test")
    assert refused.value.kind == "invalid"
