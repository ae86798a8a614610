"""A request sealed under keys read or made for it by a key statement
(LOAD_OR_CREATE, committed without waiting for its flush) carries those keys
as not known to be on disk (lrs.store.unconfirmed_keys) whatever happens to
the process's notes while it waits for the statement's answer: notes
dropped to make room, or all of them forgotten when the listening
connection is lost -- as it is when PostgreSQL crashes, the moment after
which a group on a new connection must propose those keys again."""

from __future__ import annotations

import asyncio
import math
import os
import time

import asyncpg

from lrs.privacy.master import MasterKey
from lrs.store.learner_key_sql import LOAD_OR_CREATE
from lrs.store.learner_keys import LearnerKeys
from tests.statements import new_id, statement

TENANT = "default"
AUTHORITY = {"objectType": "Agent", "account": {"homePage": "http://lrs.example", "name": "client"}}


def body(n: int) -> dict:
    return {**statement(statement_id=new_id(), activity="http://example.com/a"),
            "actor": {"objectType": "Agent", "mbox": f"mailto:l{n}@example.com"}}


def trusting(keyring: LearnerKeys) -> LearnerKeys:
    keyring.not_listening()  # as the service before its listening connection opens
    keyring.forget_all()
    keyring.trust_cache = True
    return keyring


async def sealed_keys(keyring: LearnerKeys, pool: asyncpg.Pool, count: int):
    before = time.monotonic()
    sealed = await keyring.seal_statements(TENANT, [body(n) for n in range(count)], AUTHORITY)
    rows = await pool.fetch("SELECT pseudonym, generation, wrapped FROM learner_keys WHERE tenant = $1", TENANT)
    live = {row["pseudonym"]: (row["generation"], row["wrapped"]) for row in rows}
    learners = {p: key for p, key in live.items() if (p, key[0]) in sealed.refs}
    return sealed, learners, before


async def test_keys_loaded_for_a_request_are_carried_though_the_listening_connection_is_lost_meanwhile(
    pool: asyncpg.Pool,
) -> None:
    class KeyPool:
        """The key pool, with the listening connection lost right after a key statement answered."""

        async def fetch(self, query: str, *args):
            rows = await pool.fetch(query, *args)
            if query == LOAD_OR_CREATE:
                asyncio.get_running_loop().call_soon(keyring.not_listening)
            return rows

    keyring = trusting(LearnerKeys(pool, MasterKey(os.urandom(32)), key_pool=KeyPool()))
    sealed, learners, before = await sealed_keys(keyring, pool, 3)
    assert len(learners) == 4  # and the authority
    assert sealed.unconfirmed == learners
    assert before <= sealed.unconfirmed_since < math.inf


async def test_keys_loaded_for_a_request_are_carried_though_their_notes_were_dropped_to_make_room(
    pool: asyncpg.Pool,
) -> None:
    keyring = trusting(LearnerKeys(pool, MasterKey(os.urandom(32)), capacity=4096))  # notes: 1,024
    sealed, learners, before = await sealed_keys(keyring, pool, 1100)
    assert len(learners) == 1101  # and the authority
    assert sealed.unconfirmed == learners
    assert before <= sealed.unconfirmed_since < math.inf
