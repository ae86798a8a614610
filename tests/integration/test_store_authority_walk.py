"""The statements/read/mine scope's walk of its own Statements (0094): a store
upgraded to the (authority_key, position) index answers every query, paged,
as before, whichever walk a page takes (the authority's few Statements, or
the filters' ranges), and a Statement of another authority whose key only
shares the hash is never in the answer."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import msgspec
import pytest

from lrs.ingest.prepare import prepare_statements
from lrs.ingest.query import StatementQuery
from lrs.store import StatementWriter, create_pool, reader
from lrs.store.statement_walks import AUTHORITY_WALK_MAX
from lrs.store.migrations import apply_migrations, list_migrations
from tests.integration.test_store_lean_statements import HOME, OTHER_AUTHORITY, VERBS, answers, bodies

APP = f"account:{HOME}|app"
# AUTHORITY_HAS_FEW stand-ins (same parameters): the authority walk, or the filters' walks
WALK_AUTHORITY = "SELECT $1::text IS NOT NULL AND $2::text IS NOT NULL"
WALK_FILTERS = "SELECT $1::text IS NULL AND $2::text IS NULL"


async def test_mine_pages_answer_as_before_the_index_whichever_walk_they_take(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    early = tmp_path / "early"
    early.mkdir()
    # every migration but 0094: the writer of today needs the later ones
    # (0099's head lock), and 0094 is then applied to a store that has them
    for migration in list_migrations():
        if migration.version != 94:
            (early / migration.path.name).write_text(migration.sql())
    await apply_migrations(database_url, early)
    pool = await create_pool(database_url, min_size=1, max_size=2)
    try:
        writer = StatementWriter(pool, wait_ms=0.0)
        await writer.start()
        for statement, authority in bodies():
            await writer.append("t", prepare_statements([statement], version="1.0.3", authority=authority,
                                                        new_id=uuid.uuid4))
        await writer.close()
        before = await answers(pool, "t")
        # the other app's Statements now share the app's authority hash: their JSON tells them apart
        other = "U:account:" + OTHER_AUTHORITY["account"]["homePage"] + "|" + OTHER_AUTHORITY["account"]["name"]
        planted = await pool.execute(
            "UPDATE statements SET authority_key = statement_key('t', $1) WHERE authority_key = statement_key('t', $2)",
            "U:" + APP, other)
        assert planted == "UPDATE 3"
        await apply_migrations(database_url)
        assert await pool.fetchval("SELECT to_regclass('statements_authority_key_position') IS NOT NULL")
        for probe in (None, WALK_AUTHORITY, WALK_FILTERS):
            if probe is not None:
                monkeypatch.setattr(reader, "AUTHORITY_HAS_FEW", probe)
            assert await answers(pool, "t") == before, probe
        # and they are the answers: a few spelled out
        by_filters = {(repr(f), a): pages for f, a, pages in before[: 2 * 15]}
        ids = [s["id"] for s, _ in bodies()]
        assert by_filters[(repr({"verb": VERBS[0]}), APP)] == [[ids[12], ids[10]], [ids[6], ids[2]]]
        assert by_filters[(repr({}), APP)] == [[ids[13], ids[12]], [ids[11], ids[10]], [ids[9], ids[7]],
                                               [ids[6], ids[5]], [ids[3], ids[2]]]
    finally:
        await pool.close()


async def page_ids(pool: Any, query: StatementQuery, authority: str) -> list[str]:
    bodies, _, _ = await reader.query_statements(pool, "t", query, limit=query.limit, authority=authority)
    return [msgspec.json.decode(b)["id"] for b in bodies]


async def test_an_authority_with_more_statements_than_the_walk_takes_walks_the_filters(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The probe counts the authority's Statements up to the bound, in the tenant only."""
    await apply_migrations(database_url)
    monkeypatch.setattr(reader, "AUTHORITY_HAS_FEW", reader.AUTHORITY_HAS_FEW.replace(
        str(AUTHORITY_WALK_MAX), "3"))
    pool = await create_pool(database_url, min_size=1, max_size=2)
    try:
        writer = StatementWriter(pool, wait_ms=0.0)
        await writer.start()
        plain = [(s, a) for s, a in bodies()[:12]]
        for statement, authority in plain:
            await writer.append("t", prepare_statements([statement], version="1.0.3", authority=authority,
                                                        new_id=uuid.uuid4))
        await writer.close()
        few = await pool.fetchval(reader.AUTHORITY_HAS_FEW, "t", "U:" + APP)
        other = "account:" + OTHER_AUTHORITY["account"]["homePage"] + "|" + OTHER_AUTHORITY["account"]["name"]
        assert (few, await pool.fetchval(reader.AUTHORITY_HAS_FEW, "t", "U:" + other)) == (False, True)
        assert await pool.fetchval(reader.AUTHORITY_HAS_FEW, "elsewhere", "U:" + APP) is True
        query = StatementQuery(limit=10, verb=VERBS[0])
        ids = [s["id"] for s, _ in plain]
        assert await page_ids(pool, query, APP) == [ids[10], ids[6], ids[2]]
        assert await page_ids(pool, query, other) == [ids[8], ids[4], ids[0]]
    finally:
        await pool.close()


async def test_mine_pages_with_since_and_until_keep_to_the_window_whichever_walk_they_take(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The authority's walk shares the since/until positions the other pages
    search once (time_bounds): its SQL must carry them too."""
    await apply_migrations(database_url)
    pool = await create_pool(database_url, min_size=1, max_size=2)
    try:
        writer = StatementWriter(pool, wait_ms=0.0)
        await writer.start()
        written = bodies()
        for statement, authority in written:
            await writer.append("t", prepare_statements([statement], version="1.0.3", authority=authority,
                                                        new_id=uuid.uuid4))
        await writer.close()
        rows = await pool.fetch("SELECT statement_id, stored FROM statements WHERE tenant = 't' ORDER BY position")
        stored = {str(r["statement_id"]): r["stored"] for r in rows}
        since, until = rows[2]["stored"], rows[10]["stored"]
        mine = {s["id"] for s, a in written if "account:" + a["account"]["homePage"] + "|" + a["account"]["name"] == APP}
        for filters in ({}, {"verb": VERBS[0]}):
            expected = [
                s["id"] for s, _ in reversed(written)
                if s["id"] in mine and since < stored[s["id"]] <= until
                and ("verb" not in filters or s["verb"]["id"] == filters["verb"])
            ]
            assert expected, filters
            for probe in (WALK_AUTHORITY, WALK_FILTERS):
                monkeypatch.setattr(reader, "AUTHORITY_HAS_FEW", probe)
                query = StatementQuery(limit=50, since=since, until=until, **filters)
                assert await page_ids(pool, query, APP) == expected, (filters, probe)
    finally:
        await pool.close()
