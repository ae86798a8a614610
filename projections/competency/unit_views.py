"""The unit tree for the console and ``GET /competency/units``: every unit
of a tenant with its counts for one programme, read in one snapshot from the
materialised per-unit counts (:mod:`projections.units.store`) and compared
with the programme's target (:mod:`projections.competency.targets`), as a
unit summary is.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import asyncpg

from projections.competency.frameworks import Program
from projections.competency.queries import SELECT_CHECKPOINT
from projections.competency.queries import _checkpoint as checkpoint_of
from projections.competency.queries import _iso as iso
from projections.competency.targets import in_force, progress, schedule_for
from projections.units import reads as unit_reads
from projections.units import store as units

__all__ = ["unit_tree"]


async def unit_tree(
    pool: asyncpg.Pool, tenant: str, *, program: Program, now: datetime | None = None
) -> dict[str, Any]:
    """Every unit of the tenant as a tree (ministry -> agency -> unit), each
    with headcount, certified, rate and target for ``program``, counting its
    descendants: read from the materialised counts in one snapshot."""
    roster_at = await units.advance_clock(pool, tenant, now or datetime.now(timezone.utc))
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        found = await unit_reads.fetch_units(conn, tenant)
        counts = await unit_reads.tree_counts(conn, tenant, program.iri, program.version)
        position = checkpoint_of(await conn.fetchval(SELECT_CHECKPOINT))
    moment = now or datetime.now(timezone.utc)
    nodes: dict[str, dict[str, Any]] = {}
    for unit in found.values():
        headcount, certified = counts.get(unit.unit_id, (0, 0))
        # The schedule of the nearest of the unit and its ancestors that has one, as a summary finds it.
        target, _, overdue = in_force(schedule_for(program, _up(unit.unit_id, found)), moment)
        nodes[unit.unit_id] = {
            "id": unit.unit_id, "name": unit.name, "kind": unit.kind, "parent": unit.parent_id,
            "headcount": headcount, "certified": certified,
            "rate": certified / headcount if headcount else None,
            "target": progress(target, headcount, certified, overdue), "children": [],
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


def _up(unit_id: str, found: dict[str, Any]) -> list[str]:
    """The unit's id and its ancestors' ids, nearest first."""
    chain: list[str] = []
    current = found.get(unit_id)
    while current is not None and current.unit_id not in chain:
        chain.append(current.unit_id)
        current = found.get(current.parent_id) if current.parent_id else None
    return chain
