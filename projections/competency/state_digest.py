"""The competency projection's audit digest: every learner's state and the
rows answers read, in one snapshot (projections/competency/store.py)."""

from __future__ import annotations

import hashlib
from typing import Sequence

import asyncpg

from projections.byte_order import byte_order
from projections.competency.codec import digest_bytes
from projections.competency.rows import CERTIFICATION_COLUMNS, MISMATCH_COLUMNS, STATE_COLUMNS
from projections.units.rebuild import certified_rows, roster_rows
from projections.units.series_store import series_rows

__all__ = ["DIGESTED_ROWS", "digest", "digest_with_position"]

SELECT_CHECKPOINT_POSITION = "SELECT position FROM projection_checkpoints WHERE name = 'competency'"
# Digest queries: {c} follows each text key (projections/byte_order.py).
SELECT_ALL_STATES = "SELECT tenant, learner, state FROM competency_learners ORDER BY tenant{c}, learner{c}"
# The rows officials' answers read straight from the tables (a unit's
# learners, summaries, reports, the known clock; the mastery mismatches),
# each in its primary key's order: the digest covers them as well as the
# states they are derived from, so an altered row shows.
DIGESTED_ROWS = (
    ("competency_states", STATE_COLUMNS, "tenant{c}, learner{c}, competency{c}"),
    ("competency_certifications", CERTIFICATION_COLUMNS, "tenant{c}, learner{c}, program{c}, program_version{c}"),
    ("competency_mastery_mismatches", MISMATCH_COLUMNS, "tenant{c}, statement_id, activity{c}"),
)
# A binary COPY of no rows: its 19-byte header and 2-byte trailer.
_EMPTY_COPY_BYTES = 21


async def _rows_digest(
    conn: asyncpg.Connection, table: str, columns: Sequence[str], key: str, order: str
) -> bytes | None:
    """SHA-256 of ``table``'s rows in ``key`` order as PostgreSQL's binary
    COPY writes them (each value in its type's binary form: floats as IEEE
    doubles, times as microseconds since 2000 in UTC, ids as 16 bytes), so
    whatever the client's settings or the states' stored format; None when
    the table is empty; ``order`` follows each text key of ``key``
    (projections/byte_order.py).  Streamed: PostgreSQL sends its chunks and this
    process only hashes them (about 1 µs a row of both: bench/digest_cost.py)."""
    sha = hashlib.sha256()
    size = 0

    async def take(chunk: bytes) -> None:
        nonlocal size
        size += len(chunk)
        sha.update(chunk)

    query = f"SELECT {', '.join(columns)} FROM {table} ORDER BY {key.format(c=order)}"
    await conn.copy_from_query(query, output=take, format="binary")
    return sha.digest() if size > _EMPTY_COPY_BYTES else None


async def digest(conn: asyncpg.Connection | asyncpg.Pool) -> str:
    """SHA-256 over every learner's canonical state in (tenant, learner) order
    (text keys in byte order, whatever the database's collation),
    then the rows answers read (:data:`DIGESTED_ROWS`: competency states,
    certifications, mastery mismatches), then every non-zero unit count in
    key order, then the roster (units, memberships with their history,
    headcounts, dropped learners), then the series' non-zero per-day deltas,
    read in one snapshot.

    Positions and wall-clock columns are left out: a rebuild from the log and
    the live projection give the same digest exactly when their states agree."""
    return (await digest_with_position(conn))[0]


async def digest_with_position(conn: asyncpg.Connection | asyncpg.Pool) -> tuple[str, int]:
    """:func:`digest` and the checkpoint it reflects, read in the same
    snapshot; on a connection in a transaction, read in that transaction
    (a replay comparing its rebuilt state with the live one:
    projections/replay_compare.py)."""
    if isinstance(conn, asyncpg.Pool):
        async with conn.acquire() as own:
            return await digest_with_position(own)
    if conn.is_in_transaction():
        return await _digest_read(conn)
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        return await _digest_read(conn)


async def _digest_read(conn: asyncpg.Connection) -> tuple[str, int]:
    sha = hashlib.sha256()

    def add(*parts: bytes) -> None:
        for part in parts:
            sha.update(len(part).to_bytes(8, "big"))
            sha.update(part)

    order = await byte_order(conn)  # text keys in byte order whatever the database's collation
    position = await conn.fetchval(SELECT_CHECKPOINT_POSITION)
    async for row in conn.cursor(SELECT_ALL_STATES.format(c=order), prefetch=2000):
        add(row["tenant"].encode(), row["learner"].encode(), digest_bytes(row["state"]))
    # Each table's rows as binary COPY writes them (_rows_digest), whatever
    # format the states are in.
    for table, columns, key in DIGESTED_ROWS:
        rows = await _rows_digest(conn, table, columns, key, order)
        if rows is not None:  # (an empty projection's digest stays the hash of nothing)
            add(table.encode(), rows)
    for row in await certified_rows(conn, order):
        add(b"unit_certified", *(str(row[c]).encode() for c in ("tenant", "unit_id", "program", "program_version", "certified")))
    async for parts in roster_rows(conn, order):  # the denominators: units, membership history, headcounts
        add(*parts)
    async for parts in series_rows(conn, order):  # the series' per-day deltas (without dropped learners)
        add(*parts)
    return sha.hexdigest(), int(position or 0)
