"""Unit views for the console and /competency/units...: the whole tree with
its counts, and a unit's rostered learners with their status.

Both read in one snapshot, per tenant, through the store functions of
:mod:`projections.units.store` and the rate-and-target rule of
:mod:`projections.competency.queries`.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import asyncpg

from projections.competency.catalog import Catalog
from projections.competency.codec import StateFormatError, decode_state
from projections.competency.frameworks import Program
from projections.competency.queries import SELECT_CHECKPOINT, QueryError, rate_and_target
from projections.competency.queries import _checkpoint as checkpoint_of
from projections.competency.queries import _iso as iso
from projections.units import store as units

SELECT_LEARNERS = "SELECT learner, state FROM competency_learners WHERE tenant = $1 AND learner = ANY($2::text[])"

__all__ = ["unit_tree", "unit_learners"]


async def unit_tree(
    pool: asyncpg.Pool, tenant: str, *, program: Program, now: datetime | None = None
) -> dict[str, Any]:
    """Every unit of the tenant as a tree (ministry -> agency -> unit), each
    with headcount, certified, rate and target for ``program``, counting its
    descendants: read from the materialised counts in one snapshot."""
    roster_at = await units.advance_clock(pool, tenant, now or datetime.now(timezone.utc))
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        found = await units.fetch_units(conn, tenant)
        counts = await units.tree_counts(conn, tenant, program.iri, program.version)
        position = checkpoint_of(await conn.fetchval(SELECT_CHECKPOINT))
    nodes: dict[str, dict[str, Any]] = {}
    for unit in found.values():
        headcount, certified = counts.get(unit.unit_id, (0, 0))
        rate, target = rate_and_target(program, headcount, certified)
        nodes[unit.unit_id] = {
            "id": unit.unit_id, "name": unit.name, "kind": unit.kind, "parent": unit.parent_id,
            "headcount": headcount, "certified": certified, "rate": rate, "target": target, "children": [],
        }
    roots = []
    for node in nodes.values():  # fetch_units orders by id, so children keep that order
        parent = nodes.get(node["parent"]) if node["parent"] else None
        (parent["children"] if parent is not None else roots).append(node)
    return {
        "program": program.iri,
        "program_version": program.version,
        "roster_as_of": iso(roster_at),
        "units": roots,
        "position": position,
    }


async def unit_learners(
    pool: asyncpg.Pool,
    catalog: Catalog,
    tenant: str,
    unit_id: str,
    *,
    program: Program,
    descendants: bool,
    after: str | None = None,
    limit: int = 100,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The learners rostered in the unit now (ordered by learner, ``after``
    pages on), each with its status for ``program`` and what is missing."""
    unit = await units.fetch_unit(pool, tenant, unit_id)
    if unit is None:
        raise QueryError(404, f"no unit {unit_id!r}", "unit")
    moment = now or datetime.now(timezone.utc)
    key = f"{program.iri}|{program.version}"
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        members = await units.members_page(conn, tenant, unit_id, descendants, moment, after=after, limit=limit + 1)
        page = members[:limit]
        rows = await conn.fetch(SELECT_LEARNERS, tenant, page)
        position = checkpoint_of(await conn.fetchval(SELECT_CHECKPOINT))
    states = {}
    for row in rows:
        try:
            states[row["learner"]] = decode_state(row["state"])
        except StateFormatError:
            raise QueryError(
                503, "the competency projection was stored by another version of the LRS: run `lrs replay competency`"
            ) from None
    required = [r.competency for r in program.requirements]
    learners = []
    for learner in page:
        state = states.get(learner)
        held = state.certifications.get(key) if state is not None else None
        if held is not None and held.earned:
            status = "certified"
        elif state is not None and any(c in state.competencies for c in required):
            status = "in_progress"
        else:
            status = "not_started"
        learners.append({
            "learner": learner,
            "status": status,
            "earned_at": held.earned_at if held is not None and held.earned else None,
            "met": list(held.met) if held is not None else [],
            "missing": list(held.missing) if held is not None else sorted(set(required)),
        })
    return {
        "unit": {"id": unit.unit_id, "name": unit.name, "kind": unit.kind, "parent": unit.parent_id},
        "program": program.iri,
        "program_version": program.version,
        "descendants": descendants,
        "learners": learners,
        "more": len(members) > limit,
        "position": position,
    }
