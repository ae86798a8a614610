"""A bulk replay builds its tables' indexes and analyses them on several
connections, against real PostgreSQL: a table's keys and its ANALYZE come
only after all its indexes are built, every table is analysed before it is
swapped in, and the live tables get the same indexes and keys."""

from __future__ import annotations

import re
from typing import Any

import asyncpg
import pytest

from lrs.store import StatementWriter
from lrs.store.pool import connect
from projections.competency.read_shares import STATEMENT_TABLES
from projections.competency.store import CompetencyProjection, digest
from projections import replay as replay_module
from projections.replay import replay
from projections.runner import ProjectionRunner
from tests.integration.competency_statements import CATALOG, INDEXES, MODULES, course_statement, write

TABLE = re.compile(r'"replay_competency"\.(\w+)')


async def test_each_table_is_keyed_and_analysed_after_its_indexes_on_any_connection(
    pool: asyncpg.Pool, writer: StatementWriter, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await write(writer, *(course_statement(n % 7, *MODULES[n % len(MODULES)], n) for n in range(40)))
    await ProjectionRunner(pool, CompetencyProjection(CATALOG)).catch_up()
    live = await digest(pool)
    tables = list(CompetencyProjection.tables)
    before = [tuple(r) for r in await pool.fetch(INDEXES, tables)]

    done: list[tuple[Any, str, str]] = []  # (connection, kind, table), in the order they finished; the connection itself, whose id a later one could reuse
    execute = asyncpg.Connection.execute

    async def recording(self: asyncpg.Connection, query: str, *args: Any, **kwargs: Any) -> Any:
        result = await execute(self, query, *args, **kwargs)
        kind = next((k for k in ("CREATE UNIQUE INDEX", "CREATE INDEX", "ADD CONSTRAINT", "ANALYZE") if k in query), None)
        found = TABLE.search(query)
        if kind is not None and found is not None:
            done.append((self, "CREATE INDEX" if "INDEX" in kind and "CREATE" in kind else kind, found.group(1)))
        return result

    # Two builders whatever the machine: the replay opens one connection per
    # usable core (up to MAX_INDEX_BUILDERS), and CI runners have more than two.
    monkeypatch.setattr(replay_module, "usable_cores", lambda: 2)
    monkeypatch.setattr(asyncpg.Connection, "execute", recording)
    await replay(pool, CompetencyProjection(CATALOG), connect=lambda: connect(database_url))
    monkeypatch.undo()

    # the replay's connection and one more, and one that indexed the tables
    # copied before the learners were folded, while they were (read_shares.py)
    assert len({connection for connection, _, _ in done}) == 3
    early = {connection for connection, _, table in done if table in STATEMENT_TABLES}
    assert len(early) == 1 and {table for connection, _, table in done if connection in early} == set(STATEMENT_TABLES)
    assert {table for _, kind, table in done if kind == "ANALYZE"} == set(tables)
    for table in tables:
        steps = [i for i, (_, _, t) in enumerate(done) if t == table]
        kinds = [done[i][1] for i in steps]
        builds = kinds.count("CREATE INDEX")
        assert builds >= 1 and kinds[:builds] == ["CREATE INDEX"] * builds, (table, kinds)
        assert kinds[-1] == "ANALYZE" and kinds.count("ANALYZE") == 1, (table, kinds)
    # tables are analysed while others' indexes are still being built, not all after all of them
    late = [(connection, kind, table) for connection, kind, table in done if table not in STATEMENT_TABLES]
    first_analysed = min(i for i, (_, kind, _) in enumerate(late) if kind == "ANALYZE")
    last_built = max(i for i, (_, kind, _) in enumerate(late) if kind == "CREATE INDEX")
    assert first_analysed < last_built
    assert [tuple(r) for r in await pool.fetch(INDEXES, tables)] == before
    statistics = "SELECT count(*) FROM pg_stats WHERE schemaname = 'public' AND tablename = $1"
    for table in ("competency_learners", "competency_states", "competency_statement_learners"):
        assert await pool.fetchval(statistics, table) > 0, table
    assert await digest(pool) == live
