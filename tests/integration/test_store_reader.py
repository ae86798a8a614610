"""GET /statements reads from the read model: filters, voiding, paging."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any, AsyncIterator

import asyncpg
import msgspec
import pytest

from lrs.ingest.prepare import prepare_statements
from lrs.ingest.query import StatementQuery
from lrs.store import StatementWriter, create_pool
from lrs.service import migrate
from lrs.store.reader import query_statements

AUTHORITY = {"objectType": "Agent", "mbox": "mailto:authority@example.com"}
VOIDED = "http://adlnet.gov/expapi/verbs/voided"
ANN = {"mbox": "mailto:ann@example.com"}
BOB = {"mbox": "mailto:bob@example.com"}
REGISTRATION = uuid.UUID("6a1c4a7e-2c56-4b57-9f3a-0a7b1f0b0c01")


def st(name: str, actor: dict = ANN, verb: str = "http://example.com/v/did",
       activity: str = "http://example.com/act/1", **extra: Any) -> dict[str, Any]:
    body = {"id": str(uuid.uuid5(uuid.NAMESPACE_URL, name)), "actor": actor,
            "verb": {"id": verb}, "object": {"id": activity}}
    body.update(extra)
    return body


def sid(name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, name))


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    await migrate(database_url)
    pool = await create_pool(database_url, min_size=1, max_size=2)
    writer = StatementWriter(pool, wait_ms=0.0)
    await writer.start()

    async def add(tenant: str, *bodies: dict[str, Any]) -> None:
        prepared = prepare_statements(list(bodies), version="1.0.3", authority=AUTHORITY, new_id=uuid.uuid4)
        await writer.append(tenant, prepared)

    await add("t", st("a1"))                                           # 1
    await add("t", st("b1", actor=BOB))                                # 2
    await add("t", st("a2", verb="http://example.com/v/passed"))       # 3
    await add("t", st("b2", actor=BOB, activity="http://example.com/act/2",
                      context={"registration": str(REGISTRATION),
                               "instructor": ANN,
                               "contextActivities": {"parent": [{"id": "http://example.com/act/1"}]}}))  # 4
    await add("t", st("a3"))                                           # 5
    await add("t", st("void-a3", actor=BOB, verb=VOIDED,
                      activity="", object={"objectType": "StatementRef", "id": sid("a3")}))  # 6
    await add("t", st("ref-b2", actor={"mbox": "mailto:carol@example.com"},
                      verb="http://example.com/v/confirmed",
                      object={"objectType": "StatementRef", "id": sid("b2")}))  # 7
    await add("other", st("x1"))                                       # 8
    await writer.close()
    yield pool
    await pool.close()


async def ids(pool: asyncpg.Pool, **params: Any) -> list[str]:
    query = StatementQuery(limit=params.pop("limit", 100), **params)
    bodies, _, has_more = await query_statements(pool, "t", query, limit=query.limit)
    assert not has_more
    return [msgspec.json.decode(b)["id"] for b in bodies]


def names(*labels: str) -> list[str]:
    return [sid(label) for label in labels]


async def test_unfiltered_newest_first_without_voided(pool: asyncpg.Pool) -> None:
    assert await ids(pool) == names("ref-b2", "void-a3", "b2", "a2", "b1", "a1")
    assert await ids(pool, ascending=True) == names("a1", "b1", "a2", "b2", "void-a3", "ref-b2")


async def test_agent_filter_and_related_agents(pool: asyncpg.Pool) -> None:
    # void-a3 targets a3 (Ann's, voided so not returned itself): StatementRef rule.
    assert await ids(pool, agent="mbox:mailto:ann@example.com") == names("void-a3", "a2", "a1")
    # b2 names Ann as instructor; ref-b2 targets b2.
    assert await ids(pool, agent="mbox:mailto:ann@example.com", related_agents=True) == names(
        "ref-b2", "void-a3", "b2", "a2", "a1")
    # StatementRef rule: ref-b2 targets a statement by Bob.
    assert await ids(pool, agent="mbox:mailto:bob@example.com") == names("ref-b2", "void-a3", "b2", "b1")


async def test_related_agents_find_the_statements_whose_authority_is_the_agent(pool: asyncpg.Pool) -> None:
    """An Agent authority's related agent key has no row in statement_keys
    (lrs.store.group_columns.key_literal): the authority's walk finds its
    Statements, as the agent's own (unscoped) and on the rows the
    statements/read/mine scope walks (the key's condition)."""
    authority = "mbox:mailto:authority@example.com"
    # (a referring Statement holds it for the Statements its chain reaches, lrs/store/ref_keys.py)
    assert not await pool.fetchval(
        "SELECT count(*) FROM statement_keys k JOIN statements s ON s.position = k.position"
        " WHERE k.key = statement_key('t', $1) AND s.statement_ref IS NULL", "a:" + authority)
    every = names("ref-b2", "void-a3", "b2", "a2", "b1", "a1")
    assert await ids(pool, agent=authority, related_agents=True) == every
    assert await ids(pool, agent=authority) == []
    assert await ids(pool, agent=authority, related_agents=True, verb="http://example.com/v/did") == names(
        "ref-b2", "void-a3", "b2", "b1", "a1")
    for page in (1, 4):
        query = StatementQuery(limit=page, agent=authority, related_agents=True, ascending=True)
        bodies, _, has_more = await query_statements(pool, "t", query, limit=page)
        assert [msgspec.json.decode(b)["id"] for b in bodies] == every[::-1][:page] and has_more
    mine = StatementQuery(limit=100, agent=authority, related_agents=True, activity="http://example.com/act/1")
    bodies, _, _ = await query_statements(pool, "t", mine, limit=100, authority=authority)
    assert [msgspec.json.decode(b)["id"] for b in bodies] == names("void-a3", "a2", "b1", "a1")


async def test_verb_activity_registration_filters(pool: asyncpg.Pool) -> None:
    assert await ids(pool, verb="http://example.com/v/passed") == names("a2")
    assert await ids(pool, activity="http://example.com/act/2") == names("ref-b2", "b2")
    assert await ids(pool, activity="http://example.com/act/1") == names("void-a3", "a2", "b1", "a1")
    assert await ids(pool, activity="http://example.com/act/1", related_activities=True) == names(
        "ref-b2", "void-a3", "b2", "a2", "b1", "a1")
    assert await ids(pool, registration=REGISTRATION) == names("ref-b2", "b2")
    # Both filters must hold for one statement (void-a3: Bob but voided verb;
    # its target a3: did but Ann).
    assert await ids(pool, verb="http://example.com/v/did", agent="mbox:mailto:bob@example.com") == names(
        "ref-b2", "b2", "b1")


async def test_since_is_exclusive_and_until_inclusive(pool: asyncpg.Pool) -> None:
    rows = await pool.fetch("SELECT statement_id, stored FROM statements WHERE tenant = 't' ORDER BY position")
    stored = {str(r["statement_id"]): r["stored"] for r in rows}
    assert await ids(pool, since=stored[sid("b2")], ascending=True) == names("void-a3", "ref-b2")
    assert await ids(pool, until=stored[sid("b1")], ascending=True) == names("a1", "b1")
    assert await ids(pool, since=stored[sid("a1")], until=stored[sid("a2")]) == names("a2", "b1")
    assert await ids(pool, since=stored[sid("a1")] - timedelta(microseconds=1), until=stored[sid("a1")]) == names("a1")


async def test_paging_by_position_in_both_directions(pool: asyncpg.Pool) -> None:
    for ascending in (False, True):
        query = StatementQuery(limit=4, ascending=ascending)
        seen: list[str] = []
        after = None
        pages = 0
        while True:
            bodies, last, has_more = await query_statements(pool, "t", query, after_position=after, limit=2)
            seen += [msgspec.json.decode(b)["id"] for b in bodies]
            pages += 1
            if not has_more:
                break
            after = last
        expected = await ids(pool, ascending=ascending)
        assert seen == expected and pages == 3


async def test_empty_result(pool: asyncpg.Pool) -> None:
    bodies, last, has_more = await query_statements(
        pool, "t", StatementQuery(limit=10, verb="http://example.com/v/none"), limit=10)
    assert (bodies, last, has_more) == ([], None, False)


@pytest.mark.parametrize(
    "name", ['quote " in name', "back\\slash", "comma, and {braces}", "ünïcødé 名前", "  spaces  ", "NULL"]
)
async def test_filter_keys_with_awkward_characters_round_trip(database_url: str, name: str) -> None:
    """Filter keys travel to PostgreSQL as text[] literals: quoting must not change them."""
    await migrate(database_url)
    pool = await create_pool(database_url, min_size=1, max_size=2)
    try:
        writer = StatementWriter(pool, wait_ms=0.0)
        await writer.start()
        actor = {"account": {"homePage": "https://sso.example.gov", "name": name}}
        prepared = prepare_statements([st("awkward", actor=actor)], version="1.0.3", authority=AUTHORITY,
                                      new_id=uuid.uuid4)
        await writer.append("t", prepared)
        await writer.close()
        assert await pool.fetchval(
            "SELECT count(*) FROM statement_keys k JOIN statements s USING (position)"
            " WHERE s.statement_id = $1 AND k.key = statement_key('t', $2)",
            uuid.UUID(sid("awkward")), f"A:account:https://sso.example.gov|{name}") == 1
        query = StatementQuery(limit=10, agent=f"account:https://sso.example.gov|{name}")
        bodies, _, _ = await query_statements(pool, "t", query, limit=10)
        assert [msgspec.json.decode(b)["id"] for b in bodies] == [sid("awkward")]
    finally:
        await pool.close()


@pytest.mark.parametrize("bulk", [False, True])
async def test_a_statement_referring_to_one_of_another_authority_is_that_authority_s_related(
        database_url: str, bulk: bool) -> None:
    """A Statement whose StatementRef targets one whose Agent authority is X
    is X's with related_agents, whichever gave it its chain's keys: the
    writer (from the target's JSON) or, for a store loaded in bulk,
    add_statement_ref_keys() (from the target's rows, where X's related
    agent key has none: its authority_key is copied, schemas/postgres/0142)."""
    from lrs.store import group_write

    await migrate(database_url)
    pool = await create_pool(database_url, min_size=1, max_size=2)
    other = {"objectType": "Agent", "mbox": "mailto:other-authority@example.com"}
    adds = group_write.add_reached_keys
    if bulk:
        async def nothing(*_: Any) -> int:
            return 0
        group_write.add_reached_keys = nothing  # type: ignore[assignment]
    try:
        writer = StatementWriter(pool, wait_ms=0.0)
        await writer.start()
        for body, authority in ((st("target"), AUTHORITY),
                                (st("referring", actor=BOB, object={"objectType": "StatementRef",
                                                                    "id": sid("target")}), other)):
            await writer.append("t", prepare_statements([body], version="1.0.3", authority=authority,
                                                        new_id=uuid.uuid4))
        await writer.close()
        if bulk:
            assert await pool.fetchval("SELECT add_statement_ref_keys()") > 0
        assert await ids(pool, agent="mbox:mailto:authority@example.com", related_agents=True) == names(
            "referring", "target")
        assert await ids(pool, agent="mbox:mailto:other-authority@example.com", related_agents=True) == names(
            "referring")
    finally:
        group_write.add_reached_keys = adds
        await pool.close()
