"""The keys a referring Statement holds for the Statements its chain reaches.

xAPI-Communication 2.1.3, "Filter Conditions for StatementRefs": a filter
(agent, verb, activity, registration) also returns a Statement whose Object
is a StatementRef when the Statement it targets matches, and so on along the
chain (the reader follows up to MAX_REF_DEPTH targets, voided or not).  So
that one index walk finds such a Statement, it holds in ``statement_keys``,
at its own position, the keys of every Statement its chain reaches
(:func:`lrs.ingest.stored_keys.reached_keys`: their filter keys, verb and
registration).  Those rows only make it a candidate: the reader checks each
candidate on the JSON of the Statement and of its chain
(:func:`lrs.store.reader.query_statements`), so a key that came from another
member of the chain, or a shared hash, costs reading, never a wrong answer.
Every other walk of a key's rows must check its Statements the same way, and
one that wants the newest N Statements naming an agent walks on past these
rows (:func:`lrs.store.activities.agent_names`,
:mod:`lrs.store.statement_identities`).

The writer calls :func:`add_reached_keys` under the log head lock, after the
group's rows are written, for a group that holds a referring Statement or a
Statement some stored Statement refers to (a target stored after its
referrer, :data:`REFERRED` in INSERT_GROUP).  Every referring Statement whose
chain (up to MAX_REF_DEPTH steps back) passes through the group's Statements
gets the keys of its whole chain again; rows it has already are not written
twice.  Groups with neither cost nothing here.  Stores written before this
(schemas/postgres/0097_statement_ref_keys.sql) were given the same rows.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from typing import Sequence

import asyncpg
import msgspec

from lrs.ingest.stored_keys import reached_keys
from lrs.payload_codec import open_payload

__all__ = ["MAX_REF_DEPTH", "add_reached_keys"]

# Depth cap on StatementRef chains: ids are client-chosen, so chains may loop.
MAX_REF_DEPTH = 10

# The referring Statements whose chain passes through one of the group's
# Statements (the group's own referring Statements, and those stored before
# their target, up to MAX_REF_DEPTH steps back), and for each the JSON of
# every Statement its chain reaches.  Each step is one index lookup (OFFSET 0:
# never a join over every referring Statement).
SELECT_CHAINS = f"""
WITH RECURSIVE back(tenant, statement_id, depth) AS (
    SELECT u.tenant, u.id, 0 FROM unnest($1::text[], $2::uuid[]) AS u(tenant, id)
    UNION
    SELECT r.tenant, r.statement_id, b.depth + 1
    FROM back b, LATERAL (
        SELECT r.tenant, r.statement_id FROM statements r
        WHERE r.tenant = b.tenant AND r.statement_ref = b.statement_id AND r.statement_ref IS NOT NULL OFFSET 0
    ) AS r
    WHERE b.depth < {MAX_REF_DEPTH}
), referring AS (
    SELECT DISTINCT s.tenant, s.position, s.statement_ref
    FROM (SELECT DISTINCT tenant, statement_id FROM back) AS b, LATERAL (
        SELECT s.tenant, s.position, s.statement_ref FROM statements s
        WHERE s.tenant = b.tenant AND s.statement_id = b.statement_id AND s.statement_ref IS NOT NULL OFFSET 0
    ) AS s
), chain(tenant, origin, next, depth, position) AS (
    SELECT r.tenant, r.position, r.statement_ref, 0, NULL::bigint FROM referring r
    UNION ALL
    SELECT c.tenant, c.origin, t.statement_ref, c.depth + 1, t.position
    FROM chain c, LATERAL (
        SELECT t.position, t.statement_ref FROM statements t
        WHERE t.tenant = c.tenant AND t.statement_id = c.next OFFSET 0
    ) AS t
    WHERE c.depth < {MAX_REF_DEPTH} AND c.next IS NOT NULL
)
SELECT c.tenant, c.origin, (SELECT e.payload FROM events e WHERE e.position = c.position) AS payload
FROM chain c WHERE c.depth > 0
"""
# The referring Statements' keys (one row per key), as the hashes
# statement_keys holds, less those each holds already (its own, or reached
# before).
INSERT_REACHED_KEYS = """
INSERT INTO statement_keys (key, position)
SELECT DISTINCT k.key, k.position FROM (
    SELECT statement_key(u.tenant, u.key) AS key, u.position
    FROM unnest($1::text[], $2::bigint[], $3::text[]) AS u(tenant, position, key)
) AS k
WHERE NOT EXISTS (SELECT 1 FROM statement_keys e WHERE e.key = k.key AND e.position = k.position)
"""

_decode = msgspec.json.Decoder().decode


async def add_reached_keys(conn: asyncpg.Connection, tenants: Sequence[str], ids: Sequence[uuid.UUID]) -> int:
    """Give every referring Statement whose chain passes through one of the
    Statements ``ids`` (of ``tenants``, pairwise; written in this
    transaction) the keys of the Statements its chain reaches; returns how
    many referring Statements that concerned."""
    keys: dict[tuple[str, int], set[str]] = defaultdict(set)
    for row in await conn.fetch(SELECT_CHAINS, list(tenants), list(ids)):
        keys[(row["tenant"], row["origin"])].update(reached_keys(_decode(open_payload(row["payload"]))))
    if keys:
        rows = [(tenant, position, key) for (tenant, position), values in keys.items() for key in sorted(values)]
        await conn.execute(INSERT_REACHED_KEYS, *(list(column) for column in zip(*rows)))
    return len(keys)
