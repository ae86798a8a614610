"""Gathering a certification report (reports.py) from the projection and the roster.

Everything is read in one snapshot (repeatable read) after the roster's
counts are moved to the present, so the summary rows, the not-certified
list and ``position`` agree with each other.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Literal

import asyncpg

from projections.competency.catalog import Catalog
from projections.competency.frameworks import Program
from projections.competency.queries import SELECT_CHECKPOINT, QueryError, _checkpoint, _iso, learner_standings
from projections.competency.report_words import missing_text
from projections.competency.reports import LearnerRow, Report, SummaryRow
from projections.competency.targets import in_force, needed, schedule_for
from projections.units import reads as unit_reads
from projections.units import store as units
from projections.units.roster import Unit

__all__ = ["unit_report"]

PAGE = 5000


def _agency_of(unit: Unit, by_id: dict[str, Unit]) -> str | None:
    current: Unit | None = unit
    while current is not None:
        if current.kind == "agency":
            return current.unit_id
        current = by_id.get(current.parent_id or "")
    return None


async def unit_report(
    pool: asyncpg.Pool,
    catalog: Catalog,
    tenant: str,
    unit_id: str,
    *,
    program: Program,
    by: Literal["agency", "unit"],
    now: datetime | None = None,
) -> Report:
    unit = await unit_reads.fetch_unit(pool, tenant, unit_id)
    if unit is None:
        raise QueryError(404, f"no unit {unit_id!r}", "unit")
    moment = now or datetime.now(timezone.utc)
    roster_at = await units.advance_clock(pool, tenant, moment)
    rows: list[SummaryRow] = []
    learners: list[LearnerRow] = []
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        below = await unit_reads.descendants(conn, tenant, unit_id)
        # the units above too: a report for a unit below an agency names that agency
        above = [await unit_reads.fetch_unit(conn, tenant, a) for a in (await unit_reads.ancestors(conn, tenant, unit_id))[1:]]
        by_id = {u.unit_id: u for u in [*below, *above] if u is not None}
        chosen = [(unit, True)] + [
            (u, by == "agency") for u in below[1:] if (u.kind == "agency" if by == "agency" else True)
        ]
        for member, with_descendants in chosen:
            headcount, certified = await unit_reads.unit_counts(
                conn, tenant, member.unit_id, program.iri, program.version, with_descendants
            )
            target, _, _ = in_force(schedule_for(program, await unit_reads.ancestors(conn, tenant, member.unit_id)), moment)
            want = None if target is None else needed(target.rate, headcount)
            rows.append(SummaryRow(
                unit=member.unit_id, name=member.name, kind=member.kind, parent=member.parent_id,
                with_descendants=with_descendants, headcount=headcount, certified=certified,
                rate=certified / headcount if headcount else None,
                target_rate=None if target is None else target.rate,
                target_due=None if target is None else target.due,
                target_needed=want, gap=None if want is None else max(0, want - certified),
            ))
        after = ""
        while True:
            page = await unit_reads.unit_learners(
                conn, tenant, unit_id, program.iri, program.version, True, ("in_progress", "not_started"), after, PAGE
            )
            for member, standing in await learner_standings(conn, catalog, tenant, program, page):
                placed = by_id.get(member.unit_id)
                learners.append(LearnerRow(
                    learner=member.learner, unit=member.unit_id, unit_name=placed.name if placed else "",
                    agency=_agency_of(placed, by_id) if placed else None, status=member.status,
                    missing=missing_text(standing.missing), gaps=standing.missing,
                ))
            if len(page) < PAGE:
                break
            after = page[-1].learner
        position = _checkpoint(await conn.fetchval(SELECT_CHECKPOINT))
    return Report(
        program=program.iri, program_version=program.version, unit=unit_id, by=by, position=position,
        roster_as_of=_iso(roster_at), summary=tuple(rows), not_certified=tuple(learners),
    )
