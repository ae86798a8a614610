"""Attachment bytes in PostgreSQL, stored once per (tenant, sha2).

Why the rows are written before the Statements, outside their transaction:
the group-commit writer (:mod:`lrs.store.writer`) commits many requests'
Statements in one transaction and takes only Statements; attachment bytes can
be tens of megabytes and would hold that shared transaction open.  The table
is content-addressed, so writing first is safe: ``INSERT ... ON CONFLICT DO
NOTHING`` makes a repeat a no-op, and a row whose Statements are then refused
(409, shutdown) is an orphan that nothing returns (a GET only includes
attachments referenced by the Statements it returns) and that a later upload
of the same bytes reuses.  The opposite order could commit a Statement whose
attachment data was never stored.

Small attachments go in with one INSERT.  A large one is streamed from its
spool file with ``COPY ... FROM STDIN (FORMAT binary)`` into a temporary
staging table, then moved with ``INSERT ... SELECT ... ON CONFLICT DO
NOTHING``, so the process never holds the whole value in memory.  Reads go a
slice at a time with ``substring`` (the column is ``STORAGE EXTERNAL``, so a
slice reads only its own TOAST chunks).
"""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Protocol

import asyncpg

__all__ = ["Blob", "READ_SLICE_BYTES", "read_content", "save_attachments", "stored_lengths"]

SELECT_PRESENT = "SELECT sha2 FROM attachments WHERE tenant = $1 AND sha2 = ANY($2::text[])"
SELECT_LENGTHS = "SELECT sha2, length FROM attachments WHERE tenant = $1 AND sha2 = ANY($2::text[])"
INSERT_ONE = """
INSERT INTO attachments (tenant, sha2, content_type, length, content)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (tenant, sha2) DO NOTHING
"""
CREATE_STAGING = """
CREATE TEMPORARY TABLE attachment_upload (
    tenant text, sha2 text, content_type text, length bigint, content bytea
) ON COMMIT DROP
"""
STAGING_TABLE = "attachment_upload"
STAGING_COLUMNS = ["tenant", "sha2", "content_type", "length", "content"]
MOVE_STAGED = """
INSERT INTO attachments (tenant, sha2, content_type, length, content)
SELECT tenant, sha2, content_type, length, content FROM attachment_upload
ON CONFLICT (tenant, sha2) DO NOTHING
"""
SELECT_SLICE = "SELECT substring(content FROM $3 FOR $4) FROM attachments WHERE tenant = $1 AND sha2 = $2"

READ_SLICE_BYTES = 1024 * 1024
_COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
_COPY_TRAILER = struct.pack("!h", -1)

Pool = asyncpg.Pool | asyncpg.Connection


class Blob(Protocol):
    """Attachment bytes ready to store (see :class:`lrs.http.multipart.ReceivedPart`)."""

    sha2: str  # lowercase hex
    content_type: str
    length: int

    def content_bytes(self) -> bytes | None: ...  # None: too large to hold, use iter_content
    def iter_content(self, chunk_bytes: int = ...) -> Iterator[bytes]: ...


async def save_attachments(pool: asyncpg.Pool, tenant: str, blobs: Iterable[Blob]) -> int:
    """Store each blob this tenant does not have yet; returns how many were new."""
    blobs = list(blobs)
    if not blobs:
        return 0
    async with pool.acquire() as conn:
        present = {r["sha2"] for r in await conn.fetch(SELECT_PRESENT, tenant, [b.sha2 for b in blobs])}
        missing = [b for b in blobs if b.sha2 not in present]
        small = []
        for blob in missing:
            content = blob.content_bytes()
            if content is None:
                await _copy_large(conn, tenant, blob)
            else:
                small.append((tenant, blob.sha2, blob.content_type, blob.length, content))
        if small:
            await conn.executemany(INSERT_ONE, small)
    return len(missing)


async def _copy_large(conn: asyncpg.Connection, tenant: str, blob: Blob) -> None:
    async with conn.transaction():
        await conn.execute(CREATE_STAGING)
        await conn.copy_to_table(
            STAGING_TABLE, source=_copy_rows(tenant, blob), columns=STAGING_COLUMNS, format="binary"
        )
        await conn.execute(MOVE_STAGED)


async def _copy_rows(tenant: str, blob: Blob) -> AsyncIterator[bytes]:
    """One row in PostgreSQL's binary COPY format, the content streamed from the blob."""

    def field(value: bytes) -> bytes:
        return struct.pack("!i", len(value)) + value

    yield (
        _COPY_SIGNATURE
        + struct.pack("!h", len(STAGING_COLUMNS))
        + field(tenant.encode())
        + field(blob.sha2.encode())
        + field(blob.content_type.encode())
        + field(struct.pack("!q", blob.length))
        + struct.pack("!i", blob.length)
    )
    sent = 0
    for chunk in blob.iter_content():
        sent += len(chunk)
        yield chunk
    if sent != blob.length:
        raise ValueError(f"attachment {blob.sha2}: spooled {sent} bytes, expected {blob.length}")
    yield _COPY_TRAILER


async def stored_lengths(pool: Pool, tenant: str, sha2s: list[str]) -> dict[str, int]:
    """sha2 -> length for those of ``sha2s`` this tenant has stored."""
    if not sha2s:
        return {}
    return {r["sha2"]: r["length"] for r in await pool.fetch(SELECT_LENGTHS, tenant, sha2s)}


async def read_content(
    pool: Pool, tenant: str, sha2: str, length: int, slice_bytes: int = READ_SLICE_BYTES
) -> AsyncIterator[bytes]:
    """The stored bytes, one slice per query (each query takes a pooled connection
    only for its own duration, so a slow client holds none)."""
    for start in range(0, length, slice_bytes):
        chunk = await pool.fetchval(SELECT_SLICE, tenant, sha2, start + 1, slice_bytes)
        if chunk is None:
            raise LookupError(f"attachment {sha2} disappeared while being read")
        yield chunk
