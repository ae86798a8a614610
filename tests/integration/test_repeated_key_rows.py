"""Two keys of one Statement that share their 64-bit hash: the group's INSERT
writes that hash's row twice for the Statement (it no longer sorts a group's
key rows to drop a repeat, lrs.store.group_commit_sql.INSERT_GROUP), and every
walk of statement_keys reads the Statement once: pages of every size, both
ways, with ``more`` (lrs.store.page_query._select), and the newest Statements
naming an agent (lrs.store.activities.agent_names) or a sealed learner's
pseudonym (lrs.store.statement_identities)."""

from __future__ import annotations

import os
import uuid
from typing import Any

import asyncpg
import msgspec
import pytest

from lrs.ingest.prepare import prepare_statements
from lrs.ingest.query import StatementQuery
from lrs.privacy.master import MasterKey
from lrs.store import StatementWriter
from lrs.store.activities import agent_names
from lrs.store import reader
from lrs.store.learner_keys import LearnerKeys
from lrs.store.reader import query_statements
from lrs.store.statement_identities import identities_in_statements

# In tenant "c" a key's hash is its kind's alone ('A:', 'O:', 'o:', ...):
# the actor and an Agent Object ('A:' both), the parent and grouping
# activities ('o:' both) share theirs.  Other tenants keep the real hash.
COLLIDING_KEYS = """
CREATE OR REPLACE FUNCTION statement_key(tenant text, filter_key text) RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT CASE WHEN tenant = 'c'
    THEN hashtextextended(tenant || chr(31) || left(filter_key, 2), 0)
    ELSE hashtextextended(tenant || chr(31) || filter_key, 0) END $$
"""
ANN = {"objectType": "Agent", "mbox": "mailto:ann@example.com"}
BOB = {"objectType": "Agent", "mbox": "mailto:bob@example.com"}
VERB = "http://example.com/v/met"
AUTHORITY = {"objectType": "Agent", "mbox": "mailto:lrs@example.com"}
REGISTRATION = uuid.UUID("6f1f6f6e-2b1d-4c2e-9a53-8d7f0a4e5b21")


def statement(n: int) -> dict[str, Any]:
    """Ann meets Bob, in an activity with two parents-to-be of one hash."""
    return {
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"repeated-key-rows/{n}")),
        "actor": {**ANN, "name": f"Ann {n}"}, "verb": {"id": VERB}, "object": BOB,
        "context": {"registration": str(REGISTRATION), "contextActivities": {"parent": [{"id": "http://example.com/course"}],
                                          "grouping": [{"id": "http://example.com/programme"}]}},
    }


async def store(pool: asyncpg.Pool, count: int) -> list[str]:
    """``count`` such Statements in tenant "c", two groups; their ids, newest first."""
    await pool.execute(COLLIDING_KEYS)
    writer = StatementWriter(pool, wait_ms=0.0)
    await writer.start()
    bodies = [statement(n) for n in range(count)]
    for half in (bodies[: count // 2], bodies[count // 2:]):
        await writer.append("c", prepare_statements(half, version="1.0.3", authority=AUTHORITY, new_id=uuid.uuid4))
    await writer.close()
    return [b["id"] for b in reversed(bodies)]


async def paged(pool: asyncpg.Pool, query: StatementQuery, page: int, mine: str | None = None) -> list[list[str]]:
    pages: list[list[str]] = []
    after = None
    while True:
        bodies, last, more = await query_statements(pool, "c", query, limit=page, after_position=after,
                                                    authority=mine)
        pages.append([msgspec.json.decode(b)["id"] for b in bodies])
        if not more:
            return pages
        after = last


QUERIES = {
    "agent": dict(agent="mbox:mailto:ann@example.com"),
    "agent, related": dict(agent="mbox:mailto:ann@example.com", related_agents=True),
    "agent, verb": dict(agent="mbox:mailto:bob@example.com", verb=VERB),
    "related activity": dict(activity="http://example.com/course", related_activities=True),
}


@pytest.mark.parametrize("name", QUERIES)
@pytest.mark.parametrize("ascending", [False, True])
async def test_a_statement_whose_keys_share_a_hash_is_on_a_page_once(
        pool: asyncpg.Pool, name: str, ascending: bool) -> None:
    newest_first = await store(pool, 6)
    repeated = await pool.fetchval(
        "SELECT count(*) FROM (SELECT key, position FROM statement_keys GROUP BY key, position"
        " HAVING count(*) > 1) AS r")
    assert repeated == 12  # each Statement: 'A:' (actor, Object) and 'o:' (parent, grouping)
    every = newest_first[::-1] if ascending else newest_first
    for page in (1, 2, 3, 4, 5, 6, 7):
        query = StatementQuery(limit=page, ascending=ascending, **QUERIES[name])
        expected = [every[i:i + page] for i in range(0, len(every), page)]
        assert await paged(pool, query, page) == expected, (name, page)


# The other shapes of a page over the repeated rows: a position window
# (since/until: the walk's bounds), a filter checked on each candidate's row
# beside the walked one (registration, verb), and the statements/read/mine
# scope, whose page walks the authority's Statements or, for an authority
# with many, the filters' rows with the authority checked on each (the first
# walks statements.authority_key, not statement_keys: it holds without the
# walks' DISTINCT too; every other shape fails without it).
OTHER_QUERIES = {
    "agent, since, until": dict(agent="mbox:mailto:ann@example.com"),
    "agent, registration": dict(agent="mbox:mailto:ann@example.com", registration=REGISTRATION),
    "related activity, verb": dict(activity="http://example.com/course", related_activities=True, verb=VERB),
    "agent, related, mine: its few Statements": dict(agent="mbox:mailto:bob@example.com", related_agents=True),
    "agent, related, mine: the filters' walks": dict(agent="mbox:mailto:bob@example.com", related_agents=True),
}


@pytest.mark.parametrize("name", OTHER_QUERIES)
async def test_every_other_page_shape_reads_a_statement_once(
        pool: asyncpg.Pool, name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    newest_first = await store(pool, 6)
    if name.endswith("walks"):  # an authority with many Statements: the filters' walks, the authority checked on each row
        monkeypatch.setattr(reader, "AUTHORITY_HAS_FEW", "SELECT $1::text IS NULL AND $2::text IS NULL")
    fields: dict[str, Any] = dict(OTHER_QUERIES[name])
    mine = "mbox:mailto:lrs@example.com" if "mine" in name else None
    every = newest_first
    if name.endswith("until"):
        stored = [r[0] for r in await pool.fetch("SELECT stored FROM statements WHERE tenant = 'c' ORDER BY position")]
        fields.update(since=stored[0], until=stored[4])  # since exclusive, until inclusive: the 2nd to the 5th
        every = newest_first[1:5]
    for ascending in (False, True):
        ordered = every[::-1] if ascending else every
        for page in (1, 2, 3, 5):
            query = StatementQuery(limit=page, ascending=ascending, **fields)
            expected = [ordered[i:i + page] for i in range(0, len(ordered), page)]
            assert await paged(pool, query, page, mine) == expected, (name, ascending, page)


async def test_the_newest_statements_naming_an_agent_are_each_read_once(pool: asyncpg.Pool) -> None:
    await store(pool, 6)
    assert await agent_names(pool, "c", "mbox:mailto:ann@example.com", limit=3) == ["Ann 5", "Ann 4", "Ann 3"]


async def test_the_newest_statements_naming_a_sealed_learner_are_each_read_once(pool: asyncpg.Pool) -> None:
    await pool.execute(COLLIDING_KEYS)
    keyring = LearnerKeys(pool, MasterKey(os.urandom(32)))
    await keyring.load_epoch()
    writer = StatementWriter(pool, wait_ms=0.0)
    await writer.start()
    for n in range(4):
        sealed = await keyring.seal_statements("c", [statement(n)], AUTHORITY)
        await writer.append("c", prepare_statements(sealed.statements, version="1.0.3", authority=sealed.authority,
                                                    new_id=uuid.uuid4),
                            key_epoch=sealed.epoch, key_refs=sealed.refs, ciphertexts=sealed.ciphertexts)
        keyring.stored(sealed)
    await writer.close()
    key = keyring.pseudonym_key("c", "mbox:mailto:ann@example.com")
    # the actor's and the Agent Object's pseudonym keys share their hash: each Statement holds it twice
    assert await pool.fetchval("SELECT count(*) FROM statement_keys WHERE key = statement_key('c', $1)",
                               "A:" + key) == 8
    found = await identities_in_statements(pool, keyring, "c", [key], statements=3)
    assert found[key].identifier == "mbox:mailto:ann@example.com"
    assert found[key].names == ["Ann 3", "Ann 2", "Ann 1"]
