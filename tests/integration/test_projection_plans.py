"""The live projection's lookups and deletes by key stay index (or TID)
lookups in the plan PostgreSQL caches, even when that plan is made while the
tables are empty.

A connection's prepared statement gets a generic plan after a few runs, and
keeps it while the table grows.  Each query is planned here as a generic plan
against empty, never analysed copies of the projection's tables (temporary
tables of the same names shadow the real ones for this session): a sequential
scan of a projection table in that plan would grow with every learner and
statement projected.
"""

from __future__ import annotations

import asyncpg
import pytest

from projections.competency import store

TABLES = (
    "competency_learners", "competency_states", "competency_certifications",
    "competency_statement_learners", "competency_voids",
)
QUERIES = {
    "SELECT_STATES": (store.SELECT_STATES, "text[], text[]", "ARRAY['t'], ARRAY['l']"),
    "SELECT_VOIDS": (store.SELECT_VOIDS, "text[], uuid[]", "ARRAY['t'], ARRAY[gen_random_uuid()]"),
    "SELECT_STATEMENT_LEARNERS": (
        store.SELECT_STATEMENT_LEARNERS, "text[], uuid[]", "ARRAY['t'], ARRAY[gen_random_uuid()]"
    ),
    "DELETE_STATE_ROWS": (store.DELETE_STATE_ROWS, "text[], text[], text[]", "ARRAY['t'], ARRAY['l'], ARRAY['c']"),
    "DELETE_CERTIFICATIONS": (
        store.DELETE_CERTIFICATIONS, "text[], text[], text[], text[]", "ARRAY['t'], ARRAY['l'], ARRAY['p'], ARRAY['v']"
    ),
}


@pytest.mark.parametrize("name", sorted(QUERIES))
async def test_the_cached_plan_of_a_lookup_by_key_scans_no_projection_table(pool: asyncpg.Pool, name: str) -> None:
    sql, types, arguments = QUERIES[name]
    async with pool.acquire() as conn:
        async with conn.transaction():
            for table in TABLES:
                await conn.execute(f"CREATE TEMP TABLE {table} (LIKE public.{table} INCLUDING ALL) ON COMMIT DROP")
            await conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
            await conn.execute(f"PREPARE planned ({types}) AS {sql}")
            try:
                plan = "\n".join(row[0] for row in await conn.fetch(f"EXPLAIN EXECUTE planned ({arguments})"))
            finally:
                await conn.execute("DEALLOCATE planned")
    assert "pg_temp" in plan or "competency_" in plan, plan  # it did plan against the tables
    scanned = [line for line in plan.splitlines() if "Seq Scan on competency_" in line]
    assert not scanned, f"{name} scans a whole table in its generic plan:\n{plan}"
