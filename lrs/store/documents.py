"""Document writes as events, and the documents read model.

Documents are low volume, so each write request is one transaction:

1. lock the single ``log_head`` row FOR UPDATE (the same lock the statement
   writer takes: positions stay gapless and in commit order, and every
   document write is serialised with every other write);
2. read the document's current version and let the pure rules in
   :mod:`lrs.documents.writes` decide (412/409/400 roll back, nothing stored);
3. append one ``document`` event per changed document (hash chained to the
   head), update the ``documents`` table, move the head; COMMIT.

Every query is scoped by tenant.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Collection

import asyncpg

from lrs.documents.events import DOCUMENT_EVENT, document_event_payload
from lrs.documents.model import DocumentKey, DocumentSet, NewVersion, StoredDocument
from lrs.eventlog import ONE_MICROSECOND, event_hash
from lrs.payload_codec import store_payload
from lrs.store.group_commit_sql import SELECT_ERASED_REFS
from lrs.store.group_reads import KeyErasedMeanwhile
from lrs.store.ids import TimeOrderedUuids

__all__ = ["DocumentStore", "WriteResult"]

SELECT_HEAD_FOR_UPDATE = "SELECT position, hash, stored FROM log_head WHERE singleton FOR UPDATE"
UPDATE_HEAD = "UPDATE log_head SET position = $1, hash = $2, stored = $3 WHERE singleton"
INSERT_EVENT = """
INSERT INTO events (position, event_id, tenant, event_type, statement_id, stored, payload, prev_hash, hash)
VALUES ($1, $2, $3, $4, NULL, $5, $6, $7, $8)
"""
_KEY = (
    "tenant = $1 AND resource = $2 AND activity_id = $3 AND agent_key = $4"
    " AND registration = $5 AND document_id = $6"
)
SELECT_DOCUMENT = f"SELECT content, content_type, etag, updated FROM documents WHERE {_KEY}"
UPSERT_DOCUMENT = """
INSERT INTO documents (tenant, resource, activity_id, agent_key, registration, document_id,
                       content_type, content, etag, updated, position)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
ON CONFLICT (tenant, resource, activity_id, agent_key, registration, document_id) DO UPDATE SET
    content_type = EXCLUDED.content_type, content = EXCLUDED.content, etag = EXCLUDED.etag,
    updated = EXCLUDED.updated, position = EXCLUDED.position
"""
DELETE_DOCUMENT = f"DELETE FROM documents WHERE {_KEY}"
# $5 NULL: any registration (State: listing/deleting without registration).
_CONTEXT = (
    "tenant = $1 AND resource = $2 AND activity_id = $3 AND agent_key = $4"
    " AND ($5::text IS NULL OR registration = $5)"
)
SELECT_IDS = f"""
SELECT document_id, max(updated) AS updated FROM documents
WHERE {_CONTEXT} AND ($6::timestamptz IS NULL OR updated > $6)
GROUP BY document_id ORDER BY document_id
"""
SELECT_CONTEXT_KEYS = f"SELECT registration, document_id FROM documents WHERE {_CONTEXT} ORDER BY registration, document_id"


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What a committed write did: the last event's position (None: nothing
    changed, no event) and the new version (None after a delete)."""

    position: int | None
    version: NewVersion | None = None


def _key_args(tenant: str, key: DocumentKey) -> tuple[str, str, str, str, str, str]:
    ctx = key.context
    return (tenant, ctx.resource.value, ctx.activity_id, ctx.agent_key, key.registration_key, key.document_id)


def _context_args(tenant: str, context: DocumentSet) -> tuple[str, str, str, str, str | None]:
    return (tenant, context.resource.value, context.activity_id, context.agent_key, context.registration)


class DocumentStore:
    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        clock: Callable[[], datetime] = utc_now,
        new_event_id: Callable[[], uuid.UUID] | None = None,
        seal_content: Callable[[bytes], str] | None = None,
        key_refs: Collection[tuple[str, int]] = (),
    ) -> None:
        self._pool = pool
        self._seal_content = seal_content  # the agent's documents are stored sealed
        # (pseudonym, generation) of the keys the request was sealed under: a
        # write is refused when an erasure destroyed one of them meanwhile.
        self._key_refs = key_refs
        self._clock = clock
        self._new_event_id = new_event_id or TimeOrderedUuids()

    # -- reads ---------------------------------------------------------------

    async def get(self, tenant: str, key: DocumentKey) -> StoredDocument | None:
        row = await self._pool.fetchrow(SELECT_DOCUMENT, *_key_args(tenant, key))
        return None if row is None else _stored(row)

    async def list_ids(
        self, tenant: str, context: DocumentSet, since: datetime | None
    ) -> tuple[list[str], datetime | None]:
        """The ids of the context's documents updated after ``since`` (all if
        None), sorted, and the latest ``updated`` among them."""
        rows = await self._pool.fetch(SELECT_IDS, *_context_args(tenant, context), since)
        last = max((row["updated"] for row in rows), default=None)
        return [row["document_id"] for row in rows], last

    # -- writes --------------------------------------------------------------

    async def put(
        self,
        tenant: str,
        key: DocumentKey,
        op: str,
        decide: Callable[[StoredDocument | None], NewVersion],
    ) -> WriteResult:
        """Store the version ``decide(current)`` returns; ``op`` ("put" or
        "post") goes into the event.  Errors ``decide`` raises roll back."""
        async with self._pool.acquire() as conn, conn.transaction():
            head = await conn.fetchrow(SELECT_HEAD_FOR_UPDATE)
            await self._check_keys(conn, tenant)
            row = await conn.fetchrow(SELECT_DOCUMENT, *_key_args(tenant, key))
            version = decide(None if row is None else _stored(row))
            payload = document_event_payload(key, op, version, self._seal_content)
            [(position, stored)] = await self._append(conn, head, tenant, [payload])
            await conn.execute(
                UPSERT_DOCUMENT, *_key_args(tenant, key),
                version.content_type, version.content, version.etag, stored, position,
            )
        return WriteResult(position, version)

    async def delete(
        self, tenant: str, key: DocumentKey, decide: Callable[[StoredDocument | None], bool]
    ) -> WriteResult:
        """Delete the document if ``decide(current)`` says so."""
        async with self._pool.acquire() as conn, conn.transaction():
            head = await conn.fetchrow(SELECT_HEAD_FOR_UPDATE)
            row = await conn.fetchrow(SELECT_DOCUMENT, *_key_args(tenant, key))
            if not decide(None if row is None else _stored(row)):
                return WriteResult(None)
            payload = document_event_payload(key, "delete", None)
            [(position, _)] = await self._append(conn, head, tenant, [payload])
            await conn.execute(DELETE_DOCUMENT, *_key_args(tenant, key))
        return WriteResult(position)

    async def delete_all(self, tenant: str, context: DocumentSet) -> WriteResult:
        """Delete every document of ``context`` (one event each)."""
        async with self._pool.acquire() as conn, conn.transaction():
            head = await conn.fetchrow(SELECT_HEAD_FOR_UPDATE)
            rows = await conn.fetch(SELECT_CONTEXT_KEYS, *_context_args(tenant, context))
            if not rows:
                return WriteResult(None)
            keys = [
                DocumentKey(
                    DocumentSet(
                        context.resource, context.activity_id, context.agent_key,
                        context.agent, row["registration"] or None,
                    ),
                    row["document_id"],
                )
                for row in rows
            ]
            appended = await self._append(
                conn, head, tenant, [document_event_payload(k, "delete", None) for k in keys]
            )
            for key in keys:
                await conn.execute(DELETE_DOCUMENT, *_key_args(tenant, key))
        return WriteResult(appended[-1][0])

    async def _check_keys(self, conn: asyncpg.Connection, tenant: str) -> None:
        """Under the head lock, which an erasure holds too: the erasure
        deleted the learner's documents, so content sealed under a key it
        destroyed (the sealing process had not heard of it yet) must not
        bring them back in clear."""
        if not self._key_refs:
            return
        pseudonyms, generations = (list(column) for column in zip(*self._key_refs))
        if await conn.fetch(SELECT_ERASED_REFS, [tenant] * len(pseudonyms), pseudonyms, generations):
            raise KeyErasedMeanwhile(
                "the learner named in the request was erased while it was being stored; nothing was stored, send it again"
            )

    async def _append(
        self, conn: asyncpg.Connection, head: asyncpg.Record, tenant: str, payloads: list[bytes]
    ) -> list[tuple[int, datetime]]:
        """Append one event per payload after ``head`` (locked); moves the head."""
        position, prev_hash, last_stored = head["position"], head["hash"], head["stored"]
        now = self._clock()
        appended: list[tuple[int, datetime]] = []
        for payload in payloads:
            position += 1
            stored = now if last_stored is None or now > last_stored else last_stored + ONE_MICROSECOND
            event_id = self._new_event_id()
            digest = event_hash(prev_hash, position, event_id, tenant, DOCUMENT_EVENT, stored, payload)
            await conn.execute(
                INSERT_EVENT, position, event_id, tenant, DOCUMENT_EVENT, stored, store_payload(payload), prev_hash, digest
            )
            appended.append((position, stored))
            prev_hash, last_stored = digest, stored
        await conn.execute(UPDATE_HEAD, position, prev_hash, last_stored)
        return appended


def _stored(row: asyncpg.Record) -> StoredDocument:
    return StoredDocument(bytes(row["content"]), row["content_type"], row["etag"], row["updated"])
