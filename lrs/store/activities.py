"""Canonical Activity definitions and Agent names.

The ``activity_definitions`` table is an inline projection of statement
events that carry Activity Definitions and were sent by a credential with
the ``define`` scope, kept by the statement writer: :func:`write_definitions`
runs in the group-commit transaction that appends the statements, under the
log head lock, so a definition is canonical as soon as its statement is
committed, and the Activities resource only reads the row.  Whether the
sender holds ``define`` is decided at write time, from the credential of the
request (bearer-token credentials included).

The checkpoint row records the last event position folded.  The writer
moves it with each group that writes definitions; :func:`catch_up_definitions`,
run once at start, folds what older versions of the LRS left behind (events
after the checkpoint, their senders' ``define`` scope read from the
credentials table by the key in ``authority``).  Folding an event twice gives
the same canonical definition, so an overlap after a crash is harmless.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

import asyncpg
import msgspec

from lrs.auth import Credential
from lrs.documents.activities import (
    DefinitionUpdate,
    activity_definitions_in,
    authority_credential_key,
    fold_definitions,
    merge_definition,
)
from lrs.documents.agents import agent_names_in
from lrs.ingest.stored_keys import statement_keys
from lrs.payload_codec import open_payload
from lrs.store.credentials import fetch_credential

__all__ = [
    "LockedDefinitions", "agent_names", "catch_up_definitions", "definition_slots", "get_definition",
    "write_definitions",
]

SELECT_CHECKPOINT_FOR_UPDATE = "SELECT position FROM activity_definitions_checkpoint WHERE singleton FOR UPDATE"
UPDATE_CHECKPOINT = "UPDATE activity_definitions_checkpoint SET position = $1 WHERE singleton"
SELECT_LOG_POSITION = "SELECT position FROM log_head WHERE singleton"
# A compressed payload (lrs/payload_codec.py) cannot be searched in SQL:
# those are read and searched once opened.
SELECT_DEFINING_EVENTS = """
SELECT position, tenant, payload FROM events
WHERE position > $1 AND position <= $2 AND event_type = 'statement'
  AND (position('"definition"'::bytea IN payload) > 0 OR substring(payload FROM 1 FOR 4) = '\\x28b52ffd'::bytea)
ORDER BY position LIMIT $3
"""
SELECT_DEFINITION = "SELECT definition FROM activity_definitions WHERE tenant = $1 AND activity_id = $2"
UPSERT_DEFINITION = """
INSERT INTO activity_definitions (tenant, activity_id, definition, position) VALUES ($1, $2, $3, $4)
ON CONFLICT (tenant, activity_id) DO UPDATE SET definition = EXCLUDED.definition, position = EXCLUDED.position
"""
# The writer's: the rows its group changes (locked), then all of them at once.
ADVANCE_CHECKPOINT = "UPDATE activity_definitions_checkpoint SET position = GREATEST(position, $1) WHERE singleton"
# Each (tenant, activity) its own primary-key lookup, locked in the order
# given (a LATERAL subquery that locks is run once per key): as a join, the
# writer's cached generic plan read every canonical definition into a hash
# table at each group, on a store of 2,000 definitions
# (lrs.store.group_commit_sql.begin_group, tests/integration/test_writer_generic_plans.py).
SELECT_DEFINITIONS_FOR_UPDATE = """
SELECT d.tenant, d.activity_id, d.definition
FROM unnest($1::text[], $2::text[]) AS k(tenant, activity_id)
CROSS JOIN LATERAL (
    SELECT a.tenant, a.activity_id, a.definition FROM activity_definitions a
    WHERE a.tenant = k.tenant AND a.activity_id = k.activity_id FOR UPDATE
) AS d
"""
UPSERT_DEFINITIONS = """
INSERT INTO activity_definitions (tenant, activity_id, definition, position)
SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[], $4::bigint[])
ON CONFLICT (tenant, activity_id) DO UPDATE SET definition = EXCLUDED.definition, position = EXCLUDED.position
"""
# Newest statements in which the agent appears (the 'A:' agent filter keys),
# by the key's hash, before the position $4: the Statement's JSON decides
# (agent_names).  Each position once: a Statement two of whose keys share
# the hash holds its row twice (lrs.store.group_commit_sql.INSERT_GROUP).
SELECT_AGENT_STATEMENTS = """
SELECT DISTINCT ON (k.position) s.position, (SELECT e.payload FROM events e WHERE e.position = s.position) AS payload
FROM statement_keys k JOIN statements s ON s.tenant = $1 AND s.position = k.position
WHERE k.key = statement_key($1, 'A:' || $2) AND k.position < $4
ORDER BY k.position DESC LIMIT $3
"""

_decode = msgspec.json.Decoder().decode
DEFINITION_KEY = b'"definition"'
_encode = msgspec.json.Encoder().encode

Pool = asyncpg.Pool | asyncpg.Connection


async def get_definition(pool: Pool, tenant: str, activity_id: str) -> dict[str, Any] | None:
    data = await pool.fetchval(SELECT_DEFINITION, tenant, activity_id)
    return None if data is None else _decode(data)


def definition_slots(defined: Iterable[tuple[str, list[tuple[str, dict[str, Any]]]]]) -> list[tuple[str, str]]:
    """The (tenant, activity id) of every Activity with a definition in the
    ``(tenant, the statement's activity_definitions_in)`` given, sorted (the
    order they are locked in): what :func:`write_definitions` may merge,
    looked up before the group is planned
    (:data:`lrs.store.group_commit_sql.SELECT_HEAD_WITH_TOUCHED_AND_DEFINITIONS`)."""
    return sorted({(tenant, activity_id) for tenant, found in defined for activity_id, _ in found})


@dataclass(frozen=True, slots=True)
class LockedDefinitions:
    """Canonical definitions already read and locked in the group's
    transaction, after its checkpoint row: ``slots`` looked up, ``rows`` the
    stored definition of those that exist."""

    slots: frozenset[tuple[str, str]]
    rows: dict[tuple[str, str], bytes]


async def write_definitions(
    conn: asyncpg.Connection, updates: list[DefinitionUpdate], through: int, *, checkpoint_moved: bool = False,
    locked: LockedDefinitions | None = None,
) -> int:
    """Merge ``updates`` (log order) into the canonical definitions and move the
    checkpoint to ``through`` (the group's head), inside the caller's
    transaction; returns the number of definitions changed.

    The checkpoint moves first: its row lock waits for a start-up catch-up in
    another process to finish, so the two never merge the same rows at once.
    ``checkpoint_moved``: the caller already moved it to ``through`` in an
    earlier statement of the same transaction (the statement writer does, in
    the statement that appends the group, saving a round trip).  ``locked``:
    the definitions were read and locked already (after the checkpoint, in
    the same transaction); those of ``updates`` among them are not read again."""
    if not updates:
        return 0
    if not checkpoint_moved:
        await conn.execute(ADVANCE_CHECKPOINT, through)
    slots = sorted({(u.tenant, u.activity_id) for u in updates})
    if locked is not None and locked.slots.issuperset(slots):
        current = {slot: _decode(locked.rows[slot]) for slot in slots if slot in locked.rows}
    else:
        rows = await conn.fetch(SELECT_DEFINITIONS_FOR_UPDATE, [t for t, _ in slots], [a for _, a in slots])
        current = {(r["tenant"], r["activity_id"]): _decode(r["definition"]) for r in rows}
    changed = fold_definitions(current, updates)
    if not changed:
        return 0
    await conn.execute(
        UPSERT_DEFINITIONS,
        [tenant for tenant, _ in changed],
        [activity_id for _, activity_id in changed],
        [_encode(definition) for definition, _ in changed.values()],
        [position for _, position in changed.values()],
    )
    return len(changed)


async def catch_up_definitions(pool: asyncpg.Pool, authority_home: str, batch_size: int = 2000) -> int:
    """Fold every statement event committed after the checkpoint (what an older
    version left unfolded); returns the checkpoint."""
    target = await pool.fetchval(SELECT_LOG_POSITION)
    while True:
        async with pool.acquire() as conn, conn.transaction():
            checkpoint = await conn.fetchval(SELECT_CHECKPOINT_FOR_UPDATE)
            if checkpoint >= target:
                return checkpoint
            rows = await conn.fetch(SELECT_DEFINING_EVENTS, checkpoint, target, batch_size)
            await _fold(conn, rows, authority_home)
            checkpoint = rows[-1]["position"] if len(rows) == batch_size else target
            await conn.execute(UPDATE_CHECKPOINT, checkpoint)


async def _fold(conn: asyncpg.Connection, rows: list[asyncpg.Record], authority_home: str) -> None:
    definers: dict[tuple[str, str], bool] = {}
    changed: dict[tuple[str, str], tuple[dict[str, Any], int]] = {}
    for row in rows:
        payload = open_payload(row["payload"])
        if DEFINITION_KEY not in payload:
            continue
        tenant = row["tenant"]
        statement = _decode(payload)
        key = authority_credential_key(statement, authority_home)
        if key is None:
            continue
        if (tenant, key) not in definers:
            record = await fetch_credential(conn, key)
            definers[(tenant, key)] = record is not None and record.tenant == tenant and _defines(
                record.credential()
            )
        if not definers[(tenant, key)]:
            continue
        for activity_id, definition in activity_definitions_in(statement):
            slot = (tenant, activity_id)
            if slot in changed:
                current = changed[slot][0]
            else:
                current = await get_definition(conn, tenant, activity_id)
            changed[slot] = (merge_definition(current, definition), row["position"])
    for (tenant, activity_id), (definition, position) in changed.items():
        await conn.execute(UPSERT_DEFINITION, tenant, activity_id, _encode(definition), position)


def _defines(credential: Credential) -> bool:
    return credential.allows("define")


async def agent_names(
    pool: Pool, tenant: str, agent_key: str, limit: int = 50, learner_keys: Any = None
) -> list[str]:
    """Names the agent was given in its ``limit`` newest statements
    (``learner_keys``: statements are stored sealed, docs/privacy.md)."""
    names: list[str] = []
    stored_key = agent_key if learner_keys is None else learner_keys.pseudonym_key(tenant, agent_key)
    # A Statement referring to one of the agent's holds its key too
    # (lrs/store/ref_keys.py) without naming it: passed over, the walk goes on behind it.
    payloads: list[bytes] = []
    before, batch = 2**63 - 1, limit
    while len(payloads) < limit:
        rows = await pool.fetch(SELECT_AGENT_STATEMENTS, tenant, stored_key, batch, before)
        read = [open_payload(row["payload"]) for row in rows]
        payloads += [p for p in read if "A:" + stored_key in statement_keys(_decode(p))]
        if len(rows) < batch:
            break
        before, batch = rows[-1]["position"], min(batch * 4, max(1000, limit))
    payloads = payloads[:limit]
    if learner_keys is not None:
        payloads = await learner_keys.open_payloads(tenant, payloads)
    for payload in payloads:
        for name in agent_names_in(_decode(payload), agent_key):
            if name not in names:
                names.append(name)
    return names
