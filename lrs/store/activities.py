"""Canonical Activity definitions (folded from the log) and Agent names.

The ``activity_definitions`` table is an inline projection of statement
events that carry Activity Definitions and were sent by a credential with
the ``define`` scope.  It catches up on demand (:func:`catch_up_definitions`,
called before each read of the Activities resource): one transaction per
batch, the checkpoint row locked FOR UPDATE so concurrent readers fold each
event once.  Only events whose payload contains ``"definition"`` are decoded.

Whether a sender holds ``define`` is read from the credentials table when
the event is folded, using the credential key the LRS wrote into the
statement's ``authority``.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import msgspec

from lrs.auth import Credential
from lrs.documents.activities import activity_definitions_in, authority_credential_key, merge_definition
from lrs.documents.agents import agent_names_in
from lrs.store.credentials import fetch_credential

__all__ = ["agent_names", "catch_up_definitions", "get_definition"]

SELECT_CHECKPOINT_FOR_UPDATE = "SELECT position FROM activity_definitions_checkpoint WHERE singleton FOR UPDATE"
UPDATE_CHECKPOINT = "UPDATE activity_definitions_checkpoint SET position = $1 WHERE singleton"
SELECT_LOG_POSITION = "SELECT position FROM log_head WHERE singleton"
SELECT_DEFINING_EVENTS = """
SELECT position, tenant, payload FROM events
WHERE position > $1 AND position <= $2 AND event_type = 'statement'
  AND position('"definition"'::bytea IN payload) > 0
ORDER BY position LIMIT $3
"""
SELECT_DEFINITION = "SELECT definition FROM activity_definitions WHERE tenant = $1 AND activity_id = $2"
UPSERT_DEFINITION = """
INSERT INTO activity_definitions (tenant, activity_id, definition, position) VALUES ($1, $2, $3, $4)
ON CONFLICT (tenant, activity_id) DO UPDATE SET definition = EXCLUDED.definition, position = EXCLUDED.position
"""
# Newest statements in which the agent appears (the 'A:' agent filter keys).
SELECT_AGENT_STATEMENTS = """
SELECT (SELECT e.payload FROM events e WHERE e.position = s.position) AS payload
FROM statements s WHERE s.tenant = $1 AND s.filter_keys @> ARRAY['A:' || $2]
ORDER BY s.position DESC LIMIT $3
"""

_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode

Pool = asyncpg.Pool | asyncpg.Connection


async def get_definition(pool: Pool, tenant: str, activity_id: str) -> dict[str, Any] | None:
    data = await pool.fetchval(SELECT_DEFINITION, tenant, activity_id)
    return None if data is None else _decode(data)


async def catch_up_definitions(pool: asyncpg.Pool, authority_home: str, batch_size: int = 2000) -> int:
    """Fold every statement event committed so far; returns the checkpoint."""
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
        tenant = row["tenant"]
        statement = _decode(row["payload"])
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


async def agent_names(pool: Pool, tenant: str, agent_key: str, limit: int = 50) -> list[str]:
    """Names the agent was given in its ``limit`` newest statements."""
    names: list[str] = []
    for row in await pool.fetch(SELECT_AGENT_STATEMENTS, tenant, agent_key, limit):
        for name in agent_names_in(_decode(row["payload"]), agent_key):
            if name not in names:
                names.append(name)
    return names
