"""Reads of the statements read model for GET /xapi/statements.

Pages are ordered by position (the commit order; ``stored`` rises with it),
newest first unless ``ascending``.  ``after_position`` continues a page
sequence in the query's own direction.  Filters follow xAPI-Communication
2.1.3, including "Filter Conditions for StatementRefs": a statement whose
object is a StatementRef also matches when its target (recursively) does.
Such a statement holds the keys of its chain's Statements in statement_keys
(lrs/store/ref_keys.py), so the walks that find matches find it too.
A related_agents query also walks the Statements whose authority is the
agent (``statements.authority_key``): an Agent authority's related agent key
has no row of its own (lrs.store.group_columns.key_literal).
An activity + verb query walks the key of the pair (schemas/postgres/0141)
over the Statements stored since its low-water, the activity's before
(:func:`lrs.store.page_query._split_matches`).
Voided statements are never in a filtered result.  ``authority`` (the
statements/read/mine scope) limits every read to Statements with that
authority IFI key; it is not part of the query the client sent, so it is
applied to every page and every single fetch.  All values are bound
parameters; only fixed SQL fragments are assembled.

The page's SQL is built in :mod:`lrs.store.page_query`, over the index ranges
and conditions of :mod:`lrs.store.statement_walks`; this module runs it and
checks each candidate on its own JSON.
"""

from __future__ import annotations

from typing import Any

import asyncpg

import msgspec

from lrs.batching import AUTHORITY_KEY
from lrs.ingest.query import StatementQuery
from lrs.ingest.stored_keys import has_authority, meets_filters, statement_ref_target
from lrs.payload_codec import open_payload
from lrs.store.page_check import narrow_check
from lrs.store.page_query import _PAYLOAD, build_page_query
from lrs.store.pair_keys import PairKeysEverywhere
from lrs.store.pool import create_statement_pool
from lrs.store.ref_keys import MAX_REF_DEPTH
from lrs.store.statement_walks import AUTHORITY_HAS_FEW, _pair_walked

SELECT_ONE = f"""
SELECT {_PAYLOAD} FROM statements s
WHERE s.tenant = $1 AND s.statement_id = $2 AND s.voided = $3
"""
SELECT_ONE_WITH_AUTHORITY = f"""
SELECT {_PAYLOAD} FROM statements s
WHERE s.tenant = $1 AND s.statement_id = $2 AND s.voided = $3 AND s.authority_key = statement_key($1, $4::text)
"""
# Stored Statements by id, voided or not (a request's statements sent again).
SELECT_BY_IDS = f"""
SELECT s.statement_id, {_PAYLOAD} FROM unnest($2::uuid[]) AS w(id)
JOIN statements s ON s.tenant = $1 AND s.statement_id = w.id
"""
# A StatementRef chain's next Statement, voided or not (the filters' rule).
SELECT_REF_TARGET = f"SELECT {_PAYLOAD} FROM statements s WHERE s.tenant = $1 AND s.statement_id = $2"
Pool = asyncpg.Pool | asyncpg.Connection

# The plans of a page are chosen for every value of their parameters: each
# walks an index in position order and stops at the page, whatever the key
# (bench/queries.py --buffers counts their reads under these plans).  Left to
# itself PostgreSQL planned some pages again on every run (a generic plan
# whose estimated cost is above that of the first five custom ones is never
# used): about 1 ms of planning, 0.2-0.65 ms of PostgreSQL's CPU a page more
# for verb + since + until, an agent + verb and an activity at 10 million
# statements (docs/scaling.md, "queries-16b").
READ_SETTINGS = {"plan_cache_mode": "force_generic_plan"}


async def create_read_pool(database_url: str, *, max_size: int) -> asyncpg.Pool:
    """The pool GET /xapi/statements reads pages and Statements on: its
    connections keep :data:`READ_SETTINGS` and are not reset after each use
    (the reads change nothing in the session): the reset's round trip and
    PostgreSQL transaction (``RESET ALL``...) a page fewer
    (:func:`lrs.store.pool.create_statement_pool`)."""
    return await create_statement_pool(database_url, application_name="lrs-statement-reads", max_size=max_size,
                                       settings=READ_SETTINGS)


async def get_statement(
    pool: Pool, tenant: str, statement_id: Any, *, voided: bool, authority: str | None = None
) -> bytes | None:
    """The stored JSON of one statement: ``voided=False`` (statementId) finds
    only statements that are not voided, ``voided=True`` (voidedStatementId)
    only voided ones; with ``authority`` (an IFI key) only one with that authority."""
    if authority is not None:
        stored = await pool.fetchval(
            SELECT_ONE_WITH_AUTHORITY, tenant, statement_id, voided, AUTHORITY_KEY + authority
        )
        if stored is None:
            return None
        payload = open_payload(stored)
        # the authority's hash matched; the Statement's own authority decides
        return payload if has_authority(_decode(payload), authority) else None
    stored = await pool.fetchval(SELECT_ONE, tenant, statement_id, voided)
    return None if stored is None else open_payload(stored)


async def stored_statements(pool: Pool, tenant: str, statement_ids: list[Any]) -> dict[Any, bytes]:
    """The stored JSON of each of ``statement_ids`` stored, voided or not, by id."""
    rows = await pool.fetch(SELECT_BY_IDS, tenant, statement_ids)
    return {row["statement_id"]: open_payload(row["payload"]) for row in rows}


async def query_statements(
    pool: Pool,
    tenant: str,
    query: StatementQuery,
    *,
    after_position: int | None = None,
    limit: int,
    authority: str | None = None,
    pair_keys: PairKeysEverywhere | None = None,
) -> tuple[list[bytes], int | None, bool]:
    """One page: (stored JSON of each statement, position of the last one
    returned or None if none, whether more statements follow).  ``authority``
    (an IFI key) keeps only Statements with that authority.  ``pair_keys``:
    the process's knowledge of whether every Statement has its pair keys
    (:func:`build_page_query`; None: the page's SQL asks the low-water).

    The SQL selects by hashes of the keys; each Statement it returns is then
    checked on its own JSON (:mod:`lrs.ingest.stored_keys`), and one that
    only shared a hash is dropped.  Should that leave the page short, the
    next candidates after the last one read fill it."""
    if limit < 1:
        raise ValueError("limit must be at least 1")
    if isinstance(pool, asyncpg.Pool):
        # one connection for the page's statements: one acquire (and, on a
        # pool that resets its connections, one reset) a page, not one a statement
        async with pool.acquire() as conn:
            return await query_statements(conn, tenant, query, after_position=after_position, limit=limit,
                                          authority=authority, pair_keys=pair_keys)
    checked = authority is not None or any(
        value is not None for value in (query.agent, query.verb, query.activity, query.registration)
    )
    walk_authority = True
    if authority is not None and any(
        value is not None for value in (query.agent, query.verb, query.activity, query.registration)
    ):
        walk_authority = await pool.fetchval(AUTHORITY_HAS_FEW, tenant, AUTHORITY_KEY + authority)
    narrow = narrow_check(query, authority) if checked else None
    everywhere = pair_keys is not None and _pair_walked(query) and await pair_keys.everywhere(pool)
    kept: list[tuple[int, bytes]] = []
    cursor = after_position
    while True:
        sql, params = build_page_query(tenant, query, cursor, limit, authority, walk_authority=walk_authority,
                                       pair_keys_everywhere=everywhere)
        rows = await pool.fetch(sql, *params)
        for position, stored in rows:
            if stored is None:  # another tenant's event (a shared hash, :data:`_PAGE_PAYLOAD`)
                continue
            payload = open_payload(stored)
            if not checked:
                kept.append((position, payload))
                continue
            found = narrow(payload) if narrow is not None else None
            if found is None:
                meets = await _meets(pool, tenant, query, authority, payload)
            else:
                meets, target = found
                if not meets and target is not None:
                    meets = await _chain_meets(pool, tenant, query, target)
            if meets:
                kept.append((position, payload))
        if len(rows) <= limit or len(kept) > limit:
            break
        cursor = rows[-1]["position"]
    has_more = len(kept) > limit
    kept = kept[:limit]
    last = kept[-1][0] if kept else None
    return [payload for _, payload in kept], last, has_more


_decode = msgspec.json.Decoder().decode


async def _meets(pool: Pool, tenant: str, query: StatementQuery, authority: str | None, payload: bytes) -> bool:
    """Whether a candidate the SQL chose by hashes is in the result: its
    authority, and it meets the filters itself or through its StatementRef
    chain (up to MAX_REF_DEPTH targets; the keys it holds for them made it a candidate)."""
    body = _decode(payload)
    if authority is not None and not has_authority(body, authority):
        return False
    if meets_filters(query, body):
        return True
    return await _chain_meets(pool, tenant, query, statement_ref_target(body))


async def _chain_meets(pool: Pool, tenant: str, query: StatementQuery, target: Any) -> bool:
    """Whether a Statement of the StatementRef chain from ``target`` (an id,
    or None for none) meets the filters (:func:`_meets`)."""
    for _ in range(MAX_REF_DEPTH):
        if target is None:
            return False
        stored = await pool.fetchval(SELECT_REF_TARGET, tenant, target)
        if stored is None:
            return False
        body = _decode(open_payload(stored))
        if meets_filters(query, body):
            return True
        target = statement_ref_target(body)
    return False
