"""related_agents and the authority, whose Agent's 'a:' row the writer leaves
out (lrs.store.group_columns.key_literal; statements.authority_key answers it):
every kind of authority, StatementRef chains (longer than one, targets stored
after their referrer, voided targets; written or given their keys in bulk),
paging across the walks, and stores that hold the old 'a:' rows beside new
Statements without them."""

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
from lrs.service import migrate
from lrs.store import StatementWriter, create_pool
from lrs.store import group_write
from lrs.store.learner_keys import LearnerKeys
from lrs.store.reader import query_statements

X = {"objectType": "Agent", "mbox": "mailto:x@example.com"}
X_KEY = "mbox:mailto:x@example.com"
OTHER = {"objectType": "Agent", "mbox": "mailto:other@example.com"}
ANN = {"mbox": "mailto:ann@example.com"}
VOIDED = "http://adlnet.gov/expapi/verbs/voided"


def sid(name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "related-authority/" + name))


def st(name: str, actor: dict = ANN, verb: str = "http://example.com/v/did", **extra: Any) -> dict[str, Any]:
    body = {"id": sid(name), "actor": actor, "verb": {"id": verb}, "object": {"id": "http://example.com/act/1"}}
    body.update(extra)
    return body


def ref(name: str, target: str, verb: str = "http://example.com/v/commented") -> dict[str, Any]:
    return st(name, verb=verb, object={"objectType": "StatementRef", "id": sid(target)})


async def no_chain_keys(*_: Any) -> int:
    """The writer's add_reached_keys as a bulk load has it: none given."""
    return 0


async def write(database_url: str, statements: list[tuple[dict[str, Any], dict[str, Any]]],
                bulk: pytest.MonkeyPatch | None = None) -> asyncpg.Pool:
    """A migrated store holding ``statements`` (body, authority), one group
    each in order; with ``bulk``, their chains' keys are given by
    add_statement_ref_keys() as a bulk load does, not by the writer."""
    if bulk is not None:
        bulk.setattr(group_write, "add_reached_keys", no_chain_keys)
    await migrate(database_url)
    pool = await create_pool(database_url, min_size=1, max_size=2)
    writer = StatementWriter(pool, wait_ms=0.0)
    await writer.start()
    for body, authority in statements:
        await writer.append("t", prepare_statements([body], version="1.0.3", authority=authority,
                                                    new_id=uuid.uuid4))
    await writer.close()
    if bulk is not None:
        bulk.undo()
        await pool.fetchval("SELECT add_statement_ref_keys()")
    return pool


async def ids(pool: asyncpg.Pool, agent: str, *, authority: str | None = None, **params: Any) -> list[str]:
    query = StatementQuery(limit=100, agent=agent, related_agents=True, **params)
    bodies, _, has_more = await query_statements(pool, "t", query, limit=100, authority=authority)
    assert not has_more
    return [msgspec.json.decode(b)["id"] for b in bodies]


async def paged(pool: asyncpg.Pool, agent: str, page: int, ascending: bool) -> list[str]:
    """Every Statement of the related_agents query, ``page`` at a time."""
    seen: list[str] = []
    after = None
    while True:
        query = StatementQuery(limit=page, agent=agent, related_agents=True, ascending=ascending)
        bodies, last, has_more = await query_statements(pool, "t", query, limit=page, after_position=after)
        seen += [msgspec.json.decode(b)["id"] for b in bodies]
        if not has_more:
            return seen
        after = last


def names(*labels: str) -> list[str]:
    return [sid(label) for label in labels]


@pytest.mark.parametrize("authority,key", [
    ({"objectType": "Agent", "mbox": "mailto:x@example.com"}, "mbox:mailto:x@example.com"),
    ({"objectType": "Agent", "mbox_sha1sum": "A" * 40}, "mbox_sha1sum:" + "a" * 40),
    ({"objectType": "Agent", "openid": "http://example.com/openid/x"}, "openid:http://example.com/openid/x"),
    ({"objectType": "Agent", "account": {"homePage": "http://example.com", "name": "x"}},
     "account:http://example.com|x"),
])
async def test_an_agent_authority_of_each_ifi_kind_is_a_related_agent(
        database_url: str, authority: dict[str, Any], key: str) -> None:
    pool = await write(database_url, [(st("one"), authority), (st("two"), OTHER)])
    try:
        assert not await pool.fetchval("SELECT count(*) FROM statement_keys WHERE key = statement_key('t', $1)",
                                       "a:" + key)
        assert await ids(pool, key) == names("one")
        assert await ids(pool, key, authority=key) == names("one")
    finally:
        await pool.close()


async def test_a_group_authority_s_members_keep_their_rows_and_are_related_agents(database_url: str) -> None:
    """OAuth's client and user (Data 2.4.9.s3.b1): the authority's key is the
    Group's ('group:...'), which names no agent; each member is a related agent."""
    client = {"objectType": "Agent", "account": {"homePage": "http://example.com/clients", "name": "app"}}
    group = {"objectType": "Group", "member": [client, X]}
    pool = await write(database_url, [(st("by-group"), group), (st("by-x"), X), (st("by-other"), OTHER)])
    try:
        assert await pool.fetchval("SELECT count(*) FROM statement_keys WHERE key = statement_key('t', $1)",
                                   "a:" + X_KEY) == 1
        assert await ids(pool, X_KEY) == names("by-x", "by-group")
        assert await ids(pool, "account:http://example.com/clients|app") == names("by-group")
    finally:
        await pool.close()


@pytest.mark.parametrize("bulk", [False, True])
async def test_a_chain_s_authority_matches_along_the_chain_whenever_its_target_is_stored(
        database_url: str, bulk: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """A refers to B, which refers to C, whose authority is X: A and B are
    X's related Statements (xAPI-Communication 2.1.3, Filter Conditions for
    StatementRefs, followed along the chain), though C is stored after both
    (its referrers get their keys then), and still when C is voided (C
    itself is not returned; the voiding Statement, which refers to it, is)."""
    pool = await write(database_url, [
        (ref("A", "B"), OTHER), (ref("B", "C"), OTHER), (st("C"), X), (st("D"), OTHER),
        (ref("void-C", "C", verb=VOIDED), OTHER),
    ], monkeypatch if bulk else None)
    try:
        # (the voiding Statement refers to C too)
        assert await ids(pool, X_KEY) == names("void-C", "B", "A")
        assert await ids(pool, X_KEY, verb="http://example.com/v/did") == names("void-C", "B", "A")
        assert await ids(pool, "mbox:mailto:other@example.com") == names("void-C", "D", "B", "A")
        # the writer gave every row the bulk function gives (the target's
        # authority_key included), and the function run again adds none
        assert await pool.fetchval("SELECT add_statement_ref_keys()") == 0
    finally:
        await pool.close()


@pytest.mark.parametrize("old_rows", [False, True])
async def test_paging_across_the_walks_has_no_duplicate_nor_gap(database_url: str, old_rows: bool) -> None:
    """Statements matching by a key row ('A:', 'a:'), by their authority, by
    both, and (``old_rows``, a store written before the authority's 'a:' row
    was left out) by the old row as well: each once, in order, page by page,
    and within a since/until window."""
    instructor = {"context": {"instructor": X}}
    plan = [
        (st("actor-and-authority", actor=X), X), (st("authority-only"), X), (st("unrelated"), OTHER),
        (st("instructor", **instructor), OTHER), (st("instructor-and-authority", **instructor), X),
        (st("actor", actor=X), OTHER), (ref("refers", "authority-only"), OTHER), (st("authority-2"), X),
    ]
    pool = await write(database_url, plan)
    try:
        if old_rows:
            added = await pool.execute(
                "INSERT INTO statement_keys (key, position) SELECT statement_key('t', $1), s.position"
                " FROM statements s WHERE s.authority_key = statement_key('t', $2) AND NOT EXISTS ("
                "SELECT 1 FROM statement_keys e WHERE e.key = statement_key('t', $1) AND e.position = s.position)",
                "a:" + X_KEY, "U:" + X_KEY)
            assert added != "INSERT 0 0"
        every = names("authority-2", "refers", "actor", "instructor-and-authority", "instructor",
                      "authority-only", "actor-and-authority")
        assert await ids(pool, X_KEY) == every
        for page in (1, 2, 3, 7):
            assert await paged(pool, X_KEY, page, ascending=False) == every
            assert await paged(pool, X_KEY, page, ascending=True) == every[::-1]
        stored = {row["statement_id"]: row["stored"] for row in await pool.fetch(
            "SELECT statement_id::text, stored FROM statements WHERE tenant = 't'")}
        window = {"since": stored[sid("instructor")], "until": stored[sid("refers")]}
        assert await ids(pool, X_KEY, **window) == names("refers", "actor", "instructor-and-authority")
        assert await ids(pool, X_KEY, ascending=True, **window) == names("instructor-and-authority", "actor", "refers")
        mine = names("authority-2", "instructor-and-authority", "authority-only", "actor-and-authority")
        assert await ids(pool, X_KEY, authority=X_KEY) == mine
    finally:
        await pool.close()


async def test_a_sealed_agent_authority_is_a_related_agent_by_its_pseudonym(
        pool: asyncpg.Pool, writer: StatementWriter) -> None:
    """A sealed store's authority is sealed (lrs.privacy.seal): its
    statements.authority_key is the pseudonym's, which the GET's agent
    becomes (lrs.http.statements), and it has no 'a:' row either."""
    keyring = LearnerKeys(pool, MasterKey(os.urandom(32)))
    await keyring.load_epoch()
    for body, authority in ((st("sealed-by-x"), X), (st("sealed-by-other", actor=X), OTHER),
                            (st("sealed-unrelated"), OTHER)):
        sealed = await keyring.seal_statements("t", [body], authority)
        prepared = prepare_statements(sealed.statements, version="1.0.3", authority=sealed.authority,
                                      new_id=uuid.uuid4)
        await writer.append("t", prepared, key_epoch=sealed.epoch, key_refs=sealed.refs,
                            ciphertexts=sealed.ciphertexts)
        keyring.stored(sealed)
    key = keyring.pseudonym_key("t", X_KEY)
    assert not await pool.fetchval("SELECT count(*) FROM statement_keys WHERE key = statement_key('t', $1)",
                                   "a:" + key)
    assert await ids(pool, key) == names("sealed-by-other", "sealed-by-x")
    assert await ids(pool, key, authority=key) == names("sealed-by-x")
    assert await ids(pool, X_KEY) == []
