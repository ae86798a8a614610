"""The units projection's tables rebuilt from the log (a replay: the roster
and erasure events up to a position) and read back in key order for the
digests."""

from __future__ import annotations

from typing import AsyncIterator

import asyncpg

from lrs.payload_codec import open_payload
from projections.units.erased import erased_learner
from projections.units.history import RosterFold
from projections.units.sql import (
    INSERT_TREE, MEMBERSHIP_COLUMNS, SELECT_ALL_COUNTS, SELECT_ALL_DROPPED, SELECT_ALL_HEADCOUNTS, SELECT_ALL_MEMBERSHIPS,
    SELECT_ALL_UNITS, SELECT_ERASURE_EVENTS, SELECT_ROSTER_EVENTS,
)

__all__ = ["certified_rows", "rebuild_dropped", "rebuild_roster", "roster_rows"]

async def rebuild_dropped(conn: asyncpg.Connection, through: int) -> int:
    """Fill the (empty) units_dropped_learners table from the erasure events
    of the log up to ``through`` (a replay under policy ``drop``); the events read."""
    rows = {}
    for r in await conn.fetch(SELECT_ERASURE_EVENTS, through):
        rows.setdefault((r["tenant"], erased_learner(open_payload(r["payload"]))), r["position"])
    await conn.copy_records_to_table(
        "units_dropped_learners", records=[(t, l, p) for (t, l), p in rows.items()],
        columns=["tenant", "learner", "erased_position"],
    )
    return len(rows)


async def rebuild_roster(conn: asyncpg.Connection, through: int) -> int:
    """Fill the (empty) units, unit_tree and roster_memberships tables from
    the roster events of the log up to ``through``; the events read."""
    fold = RosterFold()
    count = 0
    for r in await conn.fetch(SELECT_ROSTER_EVENTS, through):  # (not in a transaction: no cursor)
        fold.add(r["position"], r["stored"], r["tenant"], open_payload(r["payload"]))
        count += 1
    await conn.copy_records_to_table("units", records=fold.unit_rows(), columns=["tenant", "unit_id", "parent_id", "kind", "name"])
    for tenant in sorted({t for t, _ in fold.units}):
        await conn.execute(INSERT_TREE, tenant)
    await conn.copy_records_to_table("roster_memberships", records=fold.membership_rows(), columns=MEMBERSHIP_COLUMNS)
    return count


async def roster_rows(conn: asyncpg.Connection, order: str) -> AsyncIterator[tuple[bytes, ...]]:
    """Units, memberships (with their history) and headcounts in key order,
    as text, for digests; ``order`` follows each text key (projections/byte_order.py)."""
    for query in (SELECT_ALL_UNITS, SELECT_ALL_MEMBERSHIPS, SELECT_ALL_HEADCOUNTS, SELECT_ALL_DROPPED):
        async for row in conn.cursor(query.format(c=order), prefetch=2000):
            yield tuple(b"" if v is None else str(v).encode() for v in row.values())


async def certified_rows(conn: asyncpg.Connection | asyncpg.Pool, order: str) -> list[asyncpg.Record]:
    """Every non-zero count, in key order (for digests; ``order`` follows
    each text key: projections/byte_order.py)."""
    return await conn.fetch(SELECT_ALL_COUNTS.format(c=order))
