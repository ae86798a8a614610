"""statement_keys: the ordered index of the filter keys (0091), as the writer
writes it, as the migration fills it for statements stored before, and as
the reader uses it (candidates only: the row's own keys decide)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import asyncpg
import msgspec

from lrs.ingest.prepare import prepare_statements
from lrs.ingest.query import StatementQuery
from lrs.ingest.stored_keys import pair_key
from lrs.service import migrate
from lrs.store import StatementWriter, create_pool
from lrs.store.migrations import apply_migrations, list_migrations
from lrs.store.reader import query_statements

AUTHORITY = {"objectType": "Agent", "mbox": "mailto:authority@example.com"}
ANN = "mbox:mailto:ann@example.com"
COURSE = "http://example.com/course"


def statement(n: int, actor: str = "mailto:ann@example.com", **extra: Any) -> dict[str, Any]:
    body = {"id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"k{n}")), "actor": {"mbox": actor},
            "verb": {"id": "http://example.com/v/did"}, "object": {"id": f"http://example.com/unit/{n % 3}"},
            "context": {"contextActivities": {"parent": [{"id": COURSE}]}}}
    body.update(extra)
    return body


async def ids(conn: Any, **filters: Any) -> list[str]:
    query = StatementQuery(limit=filters.pop("limit", 100), **filters)
    bodies, _, _ = await query_statements(conn, "t", query, limit=query.limit)
    return [msgspec.json.decode(b)["id"] for b in bodies]


async def test_the_writer_adds_one_row_per_filter_key_but_the_authority_s_and_the_activity_verb_pair(database_url: str) -> None:
    await migrate(database_url)
    pool = await create_pool(database_url, min_size=1, max_size=2)
    try:
        writer = StatementWriter(pool, wait_ms=0.0)
        await writer.start()
        await writer.append("t", prepare_statements([statement(1)], version="1.0.3", authority=AUTHORITY,
                                                    new_id=uuid.uuid4))
        await writer.close()
        from lrs.batching import filter_keys

        [prepared] = prepare_statements([statement(1)], version="1.0.3", authority=AUTHORITY, new_id=uuid.uuid4)
        # the Activity Object's pair with the verb, as the reader hashes it
        # (schemas/postgres/0141): the SQL's text is lrs.ingest.stored_keys.pair_key's
        keys = filter_keys(prepared) + [pair_key("http://example.com/unit/1", "http://example.com/v/did")]
        assert any(k.startswith("U:") for k in keys)
        # the authority and the verb are hashed in the row itself
        assert await pool.fetchval(
            "SELECT authority_key = statement_key('t', 'U:mbox:mailto:authority@example.com')"
            " AND verb_key = statement_key('t', 'V:http://example.com/v/did') FROM statements")
        indexed = await pool.fetch("SELECT key, position FROM statement_keys ORDER BY key")
        # nor the Agent authority's related agent key: authority_key finds it
        assert "a:mbox:mailto:authority@example.com" in keys
        expected = await pool.fetch(
            "SELECT statement_key('t', k) AS key, 1::bigint AS position FROM unnest($1::text[]) k"
            " WHERE k NOT LIKE 'U:%' AND k <> 'a:mbox:mailto:authority@example.com' ORDER BY 1", keys)
        assert indexed == expected and len(indexed) == len(keys) - 2
    finally:
        await pool.close()


async def test_a_key_row_that_the_statement_lacks_selects_nothing(database_url: str) -> None:
    """The keys are 64-bit hashes: a row of another key's hash at a
    statement's position (what a collision would make) is only a candidate."""
    await migrate(database_url)
    pool = await create_pool(database_url, min_size=1, max_size=2)
    try:
        writer = StatementWriter(pool, wait_ms=0.0)
        await writer.start()
        await writer.append("t", prepare_statements(
            [statement(1), statement(2, actor="mailto:bob@example.com")],
            version="1.0.3", authority=AUTHORITY, new_id=uuid.uuid4))
        await writer.close()
        bob_position = await pool.fetchval(
            "SELECT position FROM statements WHERE statement_id = $1", uuid.UUID(statement(2)["id"]))
        await pool.execute("INSERT INTO statement_keys VALUES (statement_key('t', 'A:' || $1), $2)", ANN, bob_position)
        assert await ids(pool, agent=ANN) == [statement(1)["id"]]
        assert await ids(pool, agent=ANN, related_agents=True) == [statement(1)["id"]]
    finally:
        await pool.close()


async def test_0091_fills_statement_keys_for_statements_stored_before(database_url: str, tmp_path: Path) -> None:
    """A store upgraded to 0091 answers every key filter from statement_keys,
    filled in ranges of positions (here more than one range)."""
    early = tmp_path / "early"
    early.mkdir()
    for migration in list_migrations():
        if migration.version < 91:
            (early / migration.path.name).write_text(migration.sql())
    await apply_migrations(database_url, early)
    conn = await asyncpg.connect(database_url)
    try:
        prepared = prepare_statements(
            [statement(n, actor=f"mailto:learner{n % 2}@example.com") for n in range(4)],
            version="1.0.3", authority=AUTHORITY, new_id=uuid.uuid4)
        from lrs.batching import filter_keys
        from lrs.eventlog import finalize_statement

        positions = [1, 200_000, 200_001, 450_000]  # three of the migration's ranges
        start = datetime(2024, 1, 1, tzinfo=timezone.utc)
        for position, s in zip(positions, prepared):
            stored = start + timedelta(seconds=position)
            payload = finalize_statement(s.body, stored)
            await conn.execute("INSERT INTO events VALUES ($1, $2, 't', 'statement', $3, $4, $5, $6, $7)",
                               position, uuid.uuid4(), s.statement_id, stored, payload, b"\x00" * 32, b"\x01" * 32)
            await conn.execute(
                "INSERT INTO statements (tenant, statement_id, position, stored, verb_id, filter_keys)"
                " VALUES ('t', $1, $2, $3, $4, $5)", s.statement_id, position, stored, s.verb_id, filter_keys(s))
        other = prepare_statements([statement(9)], version="1.0.3", authority=AUTHORITY, new_id=uuid.uuid4)[0]
        await conn.execute(
            "INSERT INTO statements (tenant, statement_id, position, stored, verb_id, filter_keys)"
            " VALUES ('u', $1, 300000, $2, $3, $4)", other.statement_id, start, other.verb_id, filter_keys(other))
        await apply_migrations(database_url)
        assert await conn.fetchval("SELECT count(DISTINCT position) FROM statement_keys") == 5
        assert await conn.fetchval(
            "SELECT count(*) FROM statement_keys WHERE position = 300000 AND key = statement_key('u', $1)",
            "A:mbox:mailto:ann@example.com") == 1
        newest_first = [s.body["id"] for s in reversed(prepared)]
        assert await ids(conn, agent="mbox:mailto:learner0@example.com") == newest_first[1::2]
        assert await ids(conn, activity=COURSE, related_activities=True) == newest_first
        assert await ids(conn, activity=COURSE) == []
        assert await ids(conn, activity="http://example.com/unit/0") == [prepared[3].body["id"], prepared[0].body["id"]]
        assert await ids(conn, verb="http://example.com/v/did", ascending=True) == newest_first[::-1]
    finally:
        await conn.close()


async def test_a_page_full_of_hash_collisions_reads_on_to_the_matches(database_url: str) -> None:
    """Candidates sharing only a hash with the filter's key, verb or authority
    are dropped on their JSON, and the page reads on until it is full."""
    await migrate(database_url)
    pool = await create_pool(database_url, min_size=1, max_size=2)
    try:
        writer = StatementWriter(pool, wait_ms=0.0)
        await writer.start()
        ann = [statement(n) for n in range(3)]
        bob = [statement(n, actor="mailto:bob@example.com", verb={"id": "http://example.com/v/other"})
               for n in range(3, 10)]
        other_authority = {"objectType": "Agent", "mbox": "mailto:other@example.com"}
        await writer.append("t", prepare_statements(ann, version="1.0.3", authority=AUTHORITY, new_id=uuid.uuid4))
        await writer.append("t", prepare_statements(bob, version="1.0.3", authority=other_authority,
                                                    new_id=uuid.uuid4))
        await writer.close()
        # Bob's statements, newer than Ann's, collide with Ann's key, her verb and her authority.
        await pool.execute(
            "INSERT INTO statement_keys SELECT statement_key('t', 'A:' || $1), position FROM statements"
            " WHERE position > 3", ANN)
        await pool.execute(
            "UPDATE statements SET verb_key = statement_key('t', 'V:http://example.com/v/did'),"
            " authority_key = statement_key('t', 'U:mbox:mailto:authority@example.com') WHERE position > 3")
        newest_first = [s["id"] for s in reversed(ann)]
        for filters in ({"agent": ANN}, {"agent": ANN, "related_agents": True}, {"verb": "http://example.com/v/did"}):
            bodies, last, more = await query_statements(pool, "t", StatementQuery(limit=2, **filters), limit=2)
            assert [msgspec.json.decode(b)["id"] for b in bodies] == newest_first[:2] and more, filters
            bodies, last, more = await query_statements(pool, "t", StatementQuery(limit=2, **filters),
                                                        after_position=last, limit=2)
            assert ([msgspec.json.decode(b)["id"] for b in bodies], more) == (newest_first[2:], False), filters
        mine = "mbox:mailto:authority@example.com"
        bodies, _, more = await query_statements(pool, "t", StatementQuery(limit=5), limit=5, authority=mine)
        assert ([msgspec.json.decode(b)["id"] for b in bodies], more) == (newest_first, False)
        from lrs.store.reader import get_statement

        assert await get_statement(pool, "t", uuid.UUID(bob[0]["id"]), voided=False, authority=mine) is None
        assert await get_statement(pool, "t", uuid.UUID(ann[0]["id"]), voided=False, authority=mine) is not None
    finally:
        await pool.close()


async def test_another_tenants_statement_under_a_shared_hash_is_not_returned(database_url: str) -> None:
    """A key's hash covers the tenant, and a page of one key checks its
    candidates without reading their rows (schemas/postgres/0098): a row of
    tenant t's key at another tenant's statement (what a collision of the two
    tenants' hashes would make), whose JSON names the same unit, is dropped
    on its event's tenant, and the page reads on to t's own matches."""
    await migrate(database_url)
    pool = await create_pool(database_url, min_size=1, max_size=2)
    try:
        writer = StatementWriter(pool, wait_ms=0.0)
        await writer.start()
        own = [statement(n) for n in (0, 3)]  # unit/0, each
        await writer.append("t", prepare_statements(own, version="1.0.3", authority=AUTHORITY, new_id=uuid.uuid4))
        others = [statement(n, actor="mailto:bob@example.com") for n in (6, 9, 12)]  # unit/0 too, tenant u
        await writer.append("u", prepare_statements(others, version="1.0.3", authority=AUTHORITY, new_id=uuid.uuid4))
        await writer.close()
        await pool.execute(
            "INSERT INTO statement_keys SELECT statement_key('t', k), position FROM statements,"
            " unnest(ARRAY['O:http://example.com/unit/0', 'o:' || $1, 'A:' || $2]) AS k WHERE tenant = 'u'",
            COURSE, ANN)
        newest_first = [s["id"] for s in reversed(own)]
        unit = "http://example.com/unit/0"
        for filters in ({"activity": unit}, {"activity": COURSE, "related_activities": True},
                        {"agent": ANN}, {"activity": unit, "ascending": True}):
            expected = newest_first[::-1] if filters.get("ascending") else newest_first
            assert await ids(pool, **filters) == expected, filters
            bodies, last, more = await query_statements(pool, "t", StatementQuery(limit=1, **filters), limit=1)
            assert ([msgspec.json.decode(b)["id"] for b in bodies], more) == (expected[:1], True), filters
            bodies, _, more = await query_statements(pool, "t", StatementQuery(limit=1, **filters),
                                                     after_position=last, limit=1)
            assert ([msgspec.json.decode(b)["id"] for b in bodies], more) == (expected[1:], False), filters
    finally:
        await pool.close()
