"""The statement writer's cached generic plans are index lookups.

A group's transaction plans its statements at every execution while the log
is shorter than GENERIC_PLANS_FROM events, and runs them on cached generic
plans after (lrs.store.group_commit_sql.begin_group): a generic plan made
while the tables are tiny reads them whole, and keeps doing so as they grow.
Here a fresh store is grown to that size by the writer itself (one
connection, as the service's writer keeps one), and then:

- the writer's own connection ran its first groups on custom plans and its
  later ones on generic plans (PostgreSQL's ``pg_prepared_statements``);
- the generic plan of every statement a group sends, made on the store as
  it is then (and again after an ANALYZE), reads no table of the store
  sequentially: the log, the read model, the keys, the definitions grow
  with every statement.
"""

from __future__ import annotations

import os
import re
import uuid
from typing import AsyncIterator

import asyncpg
import pytest

from lrs.ingest.prepare import prepare_statements
from lrs.privacy.master import MasterKey
from lrs.store import StatementWriter, create_pool
from lrs.store import activities, group_commit_sql, group_keys, ref_keys
from lrs.store.learner_keys import LearnerKeys
from lrs.store.event_append import append_events
from lrs.store.sealed_identities import INSERT_CIPHERTEXTS
from tests.conftest import fresh_database

AUTHORITY = {"objectType": "Agent", "name": "plans", "mbox": "mailto:plans@example.org"}
TENANT = "default"
# The store's tables that grow with the statements (log_head and the
# checkpoints are single rows: reading them whole is reading one row).
GROWING = ("statements", "events", "statement_keys", "activity_definitions", "learner_keys", "sealed_identities")
FUNCTION_ARGUMENTS = {"wanted_tenants": "text[]", "wanted_ids": "uuid[]", "own_tenants": "text[]", "own_ids": "uuid[]",
                      "def_tenants": "text[]", "def_ids": "text[]"}


def body(n: int) -> dict:
    """A statement with its own activity (with a definition: the writer's
    sender defines, so the canonical definitions grow too), one of 500
    learners (each a learner key and a sealed identity)."""
    return {
        "actor": {"mbox": f"mailto:learner{n % 500}@example.org"},
        "verb": {"id": "http://adlnet.gov/expapi/verbs/completed"},
        "object": {"id": f"http://example.org/unit/{n}",
                   "definition": {"name": {"en-US": f"Unit {n}"}}},
        "context": {"registration": str(uuid.UUID(int=n % 700 + 1))},
    }


async def append(writer: StatementWriter, keyring: LearnerKeys, start: int, count: int) -> None:
    """Statements start..start+count, sealed as the service seals them by default."""
    sealed = await keyring.seal_statements(TENANT, [body(n) for n in range(start, start + count)], AUTHORITY,
                                           make_keys=True)
    prepared = prepare_statements(sealed.statements, version="1.0.3", authority=sealed.authority, new_id=uuid.uuid4)
    await writer.append(TENANT, prepared, defines=True, key_epoch=sealed.epoch, key_refs=sealed.refs,
                        ciphertexts=sealed.ciphertexts, new_keys=sealed.new_keys)
    keyring.stored(sealed)


async def plan_counts(pool: asyncpg.Pool) -> tuple[int, int]:
    """Generic and custom plans of the group's write on the pool's one connection."""
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements"
            " WHERE statement LIKE '%INSERT INTO events%' AND statement NOT LIKE '%pg_prepared_statements%'"
        )
    return row["generic_plans"], row["custom_plans"]


@pytest.fixture(scope="module")
async def grown(postgres_server: str, migrated_template: str) -> AsyncIterator[tuple[str, dict[str, tuple[int, int]]]]:
    """A store of GENERIC_PLANS_FROM statements, and the plan counts of the
    writer's connection after its first groups, once the store has that
    size, and after eight more groups."""
    async with fresh_database(postgres_server, migrated_template) as url:
        pool = await create_pool(url, min_size=1, max_size=1)
        key_pool = await create_pool(url, min_size=1, max_size=1)
        keyring = LearnerKeys(key_pool, MasterKey(os.urandom(32)))
        writer = StatementWriter(pool, wait_ms=0)
        await writer.start()
        counts = {}
        try:
            for n in range(8):
                await append(writer, keyring, n, 1)
            counts["small"] = await plan_counts(pool)
            size = group_commit_sql.GENERIC_PLANS_FROM
            for start in range(8, size, 200):
                await append(writer, keyring, start, min(200, size - start))
            counts["filled"] = await plan_counts(pool)
            for n in range(8):
                await append(writer, keyring, size + n, 1)
            counts["grown"] = await plan_counts(pool)
        finally:
            await writer.close()
            await pool.close()
            await key_pool.close()
        yield url, counts


async def test_a_group_plans_per_execution_only_while_the_log_is_short(
    grown: tuple[str, dict[str, tuple[int, int]]],
) -> None:
    _, counts = grown
    generic, custom = counts["small"]
    assert generic == 0 and custom >= 8, counts
    (filled_generic, filled_custom), (generic_after, custom_after) = counts["filled"], counts["grown"]
    assert filled_generic == 0, counts
    assert (generic_after, custom_after) == (8, filled_custom), counts


def function_queries(source: str) -> list[str]:
    """The queries of a head-lock function (log_head_locked_with_touched and
    its variant with the definitions), its arguments as parameters."""
    queries = []
    for part in source.split("RETURN QUERY")[1:]:
        query = part.split(";")[0]
        used = [(name, type_) for name, type_ in FUNCTION_ARGUMENTS.items() if re.search(rf"\b{name}\b", query)]
        for number, (name, type_) in enumerate(used, 1):
            query = re.sub(rf"\b{name}\b", f"${number}::{type_}", query)
        queries.append(query)
    return queries


async def writer_statements(conn: asyncpg.Connection) -> dict[str, str]:
    source = await conn.fetchval("SELECT prosrc FROM pg_proc WHERE proname = 'log_head_locked_with_touched'")
    head_lock, touched = function_queries(source)
    source = await conn.fetchval(
        "SELECT prosrc FROM pg_proc WHERE proname = 'log_head_locked_with_touched_and_definitions'"
    )
    head_lock_d, touched_d, definitions_d = function_queries(source)
    return {
        "log_head_locked_with_touched (head)": head_lock,
        "log_head_locked_with_touched (touched)": touched,
        "log_head_locked_with_touched_and_definitions (head)": head_lock_d,
        "log_head_locked_with_touched_and_definitions (touched)": touched_d,
        "log_head_locked_with_touched_and_definitions (definitions)": definitions_d,
        "SELECT_TOUCHED": group_commit_sql.SELECT_TOUCHED,
        "SELECT_TOUCHED_BETWEEN": group_commit_sql.SELECT_TOUCHED_BETWEEN,
        "SELECT_HEAD_FOR_UPDATE": group_commit_sql.SELECT_HEAD_FOR_UPDATE,
        "SELECT_ERASED_REFS": group_commit_sql.SELECT_ERASED_REFS,
        "PROPOSE_KEYS": group_keys.PROPOSE_KEYS,
        "SELECT_LIVE_KEYS": group_keys.SELECT_LIVE_KEYS,
        "INSERT_GROUP": group_commit_sql.INSERT_GROUP,
        "INSERT_CIPHERTEXTS": INSERT_CIPHERTEXTS,
        "UPDATE_VOIDED": group_commit_sql.UPDATE_VOIDED,
        "SELECT_CHAINS": ref_keys.SELECT_CHAINS,
        "INSERT_REACHED_KEYS": ref_keys.INSERT_REACHED_KEYS,
        "SELECT_DEFINITIONS_FOR_UPDATE": activities.SELECT_DEFINITIONS_FOR_UPDATE,
        "UPSERT_DEFINITIONS": activities.UPSERT_DEFINITIONS,
    }


# Indexes on part of a table only (the voiding, the referring statements):
# reading a tenant's entries of one is reading a few rows.
PARTIAL_INDEXES = """
SELECT coalesce(array_agg(c.relname::text), '{}') FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
WHERE i.indpred IS NOT NULL
"""
# An index scan whose only condition is the tenant: on an index of the whole
# table, a read of every row of the tenant (what a generic plan may make of
# "tenant = $1 AND statement_id = ANY($2)" when the statistics are off).
TENANT_ONLY = re.compile(r"Scan (?:using|on) (\w+)[^\n]*\n\s+Index Cond: \(tenant = [^()\n]*\)$", re.MULTILINE)


def tenant_only_scans(plan: str) -> list[str]:
    """The indexes ``plan`` scans by the tenant alone."""
    return TENANT_ONLY.findall(plan)


async def generic_plan(conn: asyncpg.Connection, sql: str) -> str:
    async with conn.transaction():
        await conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        await conn.execute(f"PREPARE planned AS {sql}")
        try:
            count = await conn.fetchval("SELECT cardinality(parameter_types) FROM pg_prepared_statements"
                                        " WHERE name = 'planned'")
            nulls = ", ".join(["NULL"] * count)
            rows = await conn.fetch(f"EXPLAIN EXECUTE planned ({nulls})" if count else "EXPLAIN EXECUTE planned")
        finally:
            await conn.execute("DEALLOCATE planned")
    return "\n".join(row[0] for row in rows)


@pytest.mark.parametrize("analysed", [False, True], ids=["as-grown", "analysed"])
async def test_the_generic_plan_of_every_statement_of_a_group_reads_no_table_whole(
    grown: tuple[str, dict[str, tuple[int, int]]], analysed: bool,
) -> None:
    url, _ = grown
    conn = await asyncpg.connect(url)
    try:
        if analysed:
            await conn.execute("ANALYZE")
        plans = {name: await generic_plan(conn, sql) for name, sql in (await writer_statements(conn)).items()}
        partial = set(await conn.fetchval(PARTIAL_INDEXES))
    finally:
        await conn.close()
    scanned = {
        name: plan for name, plan in plans.items()
        if re.search(rf"Seq Scan on ({'|'.join(GROWING)})\b", plan) or set(tenant_only_scans(plan)) - partial
    }
    assert not scanned, "\n\n".join(f"{name} reads a growing table whole:\n{plan}" for name, plan in scanned.items())
    # the plans were made against the store's tables
    assert "statements_pkey" in plans["SELECT_TOUCHED"], plans["SELECT_TOUCHED"]
    assert "activity_definitions_pkey" in plans["SELECT_DEFINITIONS_FOR_UPDATE"]
    assert "activity_definitions_pkey" in plans["log_head_locked_with_touched_and_definitions (definitions)"]
    assert "statements_tenant_statement_ref" in plans["INSERT_GROUP"], plans["INSERT_GROUP"]


async def test_a_long_log_of_few_statements_still_plans_per_execution(
    postgres_server: str, migrated_template: str,
) -> None:
    """The log position counts every event: on a log of GENERIC_PLANS_FROM
    other events (document writes) and a few statements, a generic plan
    would read the statements whole, so the groups keep planning per
    execution."""
    async with fresh_database(postgres_server, migrated_template) as url:
        conn = await asyncpg.connect(url)
        try:
            async with conn.transaction():
                await append_events(conn, TENANT, "document", [b"{}"] * group_commit_sql.GENERIC_PLANS_FROM)
        finally:
            await conn.close()
        pool = await create_pool(url, min_size=1, max_size=1)
        key_pool = await create_pool(url, min_size=1, max_size=1)
        keyring = LearnerKeys(key_pool, MasterKey(os.urandom(32)))
        writer = StatementWriter(pool, wait_ms=0)
        await writer.start()
        try:
            for n in range(8):
                await append(writer, keyring, n, 1)
            generic, custom = await plan_counts(pool)
        finally:
            await writer.close()
            await pool.close()
            await key_pool.close()
    assert (generic, custom) == (0, 8)
