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


async def test_a_learners_state_rows_are_looked_up_by_the_learner_not_by_the_competency(pool: asyncpg.Pool) -> None:
    """The delete of a learner's competency rows finds them through the
    primary key's (tenant, learner) prefix, the competency compared after:
    with the competency in the lookup, PostgreSQL could take the index on
    (tenant, competency, status) and filter every learner of that competency
    (it did, on tables without statistics, as a replay swaps in)."""
    async with pool.acquire() as conn:
        async with conn.transaction():
            await conn.execute("CREATE TEMP TABLE competency_states (LIKE public.competency_states INCLUDING ALL) ON COMMIT DROP")
            await conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
            await conn.execute(f"PREPARE planned (text[], text[], text[]) AS {store.DELETE_STATE_ROWS}")
            try:
                plan = "\n".join(row[0] for row in await conn.fetch(
                    "EXPLAIN EXECUTE planned (ARRAY['t'], ARRAY['l'], ARRAY['c'])"))
            finally:
                await conn.execute("DEALLOCATE planned")
    conditions = [line.strip() for line in plan.splitlines() if "Index Cond" in line]
    assert conditions == ["Index Cond: ((tenant = w.tenant) AND (learner = w.learner))"], plan
    assert "competency_states_pkey" in plan, plan
