"""Reading the units projection: units and their tree, memberships and the
roster's sealed learners, and the counts and learners of a unit at the
clock (:mod:`projections.units.store` keeps them)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Sequence

import asyncpg

from lrs.payload_codec import open_payload
from projections.units.history import sealed_of
from projections.units.roster import Membership, Unit
from projections.units.sql import (
    COUNT_UNIT_STATUSES, SELECT_ANCESTORS, SELECT_DESCENDANTS, SELECT_IS_ROSTERED, SELECT_MEMBERS_AT, SELECT_MEMBERSHIPS,
    SELECT_ROSTER_PAYLOADS, SELECT_UNIT, SELECT_UNIT_LEARNERS, SELECT_UNITS, SUM_CERTIFIED, SUM_HEADCOUNT, TREE_COUNTS,
)

__all__ = [
    "MembershipRow",
    "UnitLearner",
    "ancestors",
    "descendants",
    "fetch_unit",
    "fetch_units",
    "is_rostered",
    "list_memberships",
    "members_at",
    "sealed_learners",
    "tree_counts",
    "unit_counts",
    "unit_learners",
    "unit_statuses",
]

@dataclass(frozen=True, slots=True)
class UnitLearner:
    learner: str
    unit_id: str
    status: str  # certified | in_progress | not_started
    earned_at: datetime | None


async def fetch_units(conn: asyncpg.Connection | asyncpg.Pool, tenant: str) -> dict[str, Unit]:
    rows = await conn.fetch(SELECT_UNITS, tenant)
    return {r["unit_id"]: Unit(r["unit_id"], r["parent_id"], r["kind"], r["name"]) for r in rows}


async def fetch_unit(conn: asyncpg.Connection | asyncpg.Pool, tenant: str, unit_id: str) -> Unit | None:
    r = await conn.fetchrow(SELECT_UNIT, tenant, unit_id)
    return None if r is None else Unit(r["unit_id"], r["parent_id"], r["kind"], r["name"])


async def unit_counts(
    conn: asyncpg.Connection, tenant: str, unit_id: str, program: str, version: str, descendants: bool
) -> tuple[int, int]:
    """(headcount, certified) of the unit (and its descendants) at the clock."""
    headcount = await conn.fetchval(SUM_HEADCOUNT, tenant, unit_id, descendants)
    certified = await conn.fetchval(SUM_CERTIFIED, tenant, unit_id, descendants, program, version)
    return int(headcount), int(certified)


async def tree_counts(
    conn: asyncpg.Connection, tenant: str, program: str, version: str
) -> dict[str, tuple[int, int]]:
    """(headcount, certified) of every unit with its descendants, at the clock:
    one pass over ``unit_tree`` (its cost grows with units, not learners)."""
    rows = await conn.fetch(TREE_COUNTS, tenant, program, version)
    return {r["unit_id"]: (int(r["headcount"]), int(r["certified"])) for r in rows}


async def members_at(
    conn: asyncpg.Connection, tenant: str, unit_id: str, descendants: bool, moment: datetime,
    known_at: datetime | None = None,
) -> list[str]:
    """Learners whose membership in the unit (or below it) covers ``moment``,
    as the roster was known at ``known_at`` (default: ``moment``)."""
    known = moment if known_at is None else known_at
    return [r["learner"] for r in await conn.fetch(SELECT_MEMBERS_AT, tenant, unit_id, descendants, moment, known)]


@dataclass(frozen=True, slots=True)
class MembershipRow:
    membership: Membership
    recorded_position: int
    recorded_at: datetime
    superseded_position: int | None
    superseded_at: datetime | None


async def list_memberships(
    conn: asyncpg.Connection | asyncpg.Pool,
    tenant: str,
    *,
    unit_id: str | None = None,
    learner: str | None = None,
    after: tuple[str, datetime, int] | None = None,
    limit: int = 1000,
    history: bool = False,
) -> list[MembershipRow]:
    """Memberships by (learner, valid_from, recorded position): the current
    ones, or with ``history`` the superseded ones too."""
    start = after or ("", datetime.min.replace(tzinfo=timezone.utc), -1)
    rows = await conn.fetch(SELECT_MEMBERSHIPS, tenant, unit_id, learner, start[0], start[1], limit, history, start[2])
    return [
        MembershipRow(
            Membership(r["learner"], r["unit_id"], r["valid_from"], r["valid_to"]),
            r["recorded_position"], r["recorded_at"], r["superseded_position"], r["superseded_at"],
        )
        for r in rows
    ]


async def sealed_learners(conn: asyncpg.Connection | asyncpg.Pool, rows: Sequence[MembershipRow]) -> dict[str, str]:
    """Pseudonym key -> sealed clear key of the learners of ``rows``, from
    the roster events that recorded them (history.py; none when the roster
    was not sealed)."""
    positions = sorted({r.recorded_position for r in rows if r.recorded_position > 0})
    wanted = {r.membership.learner for r in rows}
    sealed: dict[str, str] = {}
    for r in await conn.fetch(SELECT_ROSTER_PAYLOADS, positions):
        for learner, text in sealed_of(open_payload(r["payload"])).items():
            if learner in wanted:
                sealed[learner] = text
    return sealed


async def unit_learners(
    conn: asyncpg.Connection, tenant: str, unit_id: str, program: str, version: str, descendants: bool,
    statuses: Sequence[str], after: str, limit: int,
) -> list[UnitLearner]:
    """Learners in the unit at the clock whose status is one of ``statuses``,
    after ``after`` in learner order, at most ``limit``."""
    rows = await conn.fetch(
        SELECT_UNIT_LEARNERS, tenant, unit_id, descendants, program, version, list(statuses), after, limit
    )
    return [UnitLearner(r["learner"], r["unit_id"], r["status"], r["earned_at"]) for r in rows]


async def unit_statuses(
    conn: asyncpg.Connection, tenant: str, unit_id: str, program: str, version: str, descendants: bool
) -> dict[str, int]:
    """How many learners of the unit at the clock have each status."""
    rows = await conn.fetch(COUNT_UNIT_STATUSES, tenant, unit_id, descendants, program, version)
    return {r["status"]: int(r["learners"]) for r in rows}


async def is_rostered(conn: asyncpg.Connection | asyncpg.Pool, tenant: str, learner: str) -> bool:
    """The learner has (or had) a membership in some unit."""
    return bool(await conn.fetchval(SELECT_IS_ROSTERED, tenant, learner))


async def descendants(conn: asyncpg.Connection | asyncpg.Pool, tenant: str, unit_id: str) -> list[Unit]:
    """The unit and every unit below it, nearest first."""
    rows = await conn.fetch(SELECT_DESCENDANTS, tenant, unit_id)
    return [Unit(r["unit_id"], r["parent_id"], r["kind"], r["name"]) for r in rows]


async def ancestors(conn: asyncpg.Connection | asyncpg.Pool, tenant: str, unit_id: str) -> list[str]:
    """The unit's id, then its parent's, up to the root."""
    return [r["ancestor_id"] for r in await conn.fetch(SELECT_ANCESTORS, tenant, unit_id)]
