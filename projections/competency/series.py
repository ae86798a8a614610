"""Certified / headcount / rate of a unit over time, on two clocks.

- ``achieved``: by the statements' ``timestamp`` (when learners earned their
  certification), with the roster as it is recorded now (valid time);
- ``known``: by the statements' ``stored`` time (when the LRS held the
  evidence), with the roster as the LRS knew it at each moment.

Each point is the state at the end of a period (day, week from Monday, or
calendar month, UTC): the certifications that hold now, dated on the clock,
of the learners on the roster at that moment, and the target in force then.
:func:`periods` is pure; :func:`unit_series` reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

import asyncpg

from projections.competency.frameworks import Program
from projections.competency.queries import SELECT_CHECKPOINT, QueryError, _checkpoint, _iso, _unit_json
from projections.competency.targets import in_force, progress, schedule_for
from projections.units import series_store
from projections.units import reads as unit_reads

__all__ = ["CLOCKS", "INTERVALS", "MAX_POINTS", "Period", "periods", "unit_series"]

CLOCKS = ("achieved", "known")
INTERVALS = ("day", "week", "month")
MAX_POINTS = 1000


@dataclass(frozen=True, slots=True)
class Period:
    label: str  # 2025-03-01, 2025-W10, 2025-03
    start: datetime
    end: datetime  # exclusive; the point describes the moment just before it

    @property
    def at(self) -> datetime:
        return self.end - timedelta(microseconds=1)


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=timezone.utc)


def periods(first: date, last: date, interval: str) -> list[Period]:
    """The periods from the one holding ``first`` to the one holding ``last``.
    Raises ValueError when ``last`` is before ``first`` or they are more than
    MAX_POINTS periods apart."""
    if last < first:
        raise ValueError("to is before from")
    found: list[Period] = []
    if interval == "day":
        start = first
        step = lambda d: d + timedelta(days=1)  # noqa: E731
        label = lambda d: d.isoformat()  # noqa: E731
    elif interval == "week":
        start = first - timedelta(days=first.weekday())
        step = lambda d: d + timedelta(days=7)  # noqa: E731
        label = lambda d: f"{d.isocalendar()[0]}-W{d.isocalendar()[1]:02d}"  # noqa: E731
    elif interval == "month":
        start = first.replace(day=1)
        step = lambda d: (d.replace(day=28) + timedelta(days=4)).replace(day=1)  # noqa: E731
        label = lambda d: f"{d.year:04d}-{d.month:02d}"  # noqa: E731
    else:
        raise ValueError(f"interval must be one of {', '.join(INTERVALS)}")
    while start <= last:
        if len(found) == MAX_POINTS:
            raise ValueError(f"more than {MAX_POINTS} {interval}s from {first} to {last}")
        try:
            following = step(start)
        except OverflowError:
            raise ValueError(f"to {last}: its {interval} ends after 9999-12-31, the last day this LRS counts") from None
        found.append(Period(label(start), _midnight(start), _midnight(following)))
        start = following
    return found


async def unit_series(
    pool: asyncpg.Pool,
    tenant: str,
    unit_id: str,
    *,
    program: Program,
    descendants: bool,
    first: date,
    last: date,
    interval: str,
    clock: str,
) -> dict[str, Any]:
    try:
        spans = periods(first, last, interval)
    except ValueError as exc:
        raise QueryError(400, str(exc), "interval" if str(exc).startswith("interval") else "to") from None
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        unit = await unit_reads.fetch_unit(conn, tenant, unit_id)
        if unit is None:
            raise QueryError(404, f"no unit {unit_id!r}", "unit")
        schedule = schedule_for(program, await unit_reads.ancestors(conn, tenant, unit_id))
        if descendants:  # the per-day deltas of the unit with everything below it
            counts = await series_store.series_counts_daily(
                conn, tenant, unit_id, program.iri, program.version, [p.end.date() for p in spans], clock
            )
        else:
            counts = await series_store.series_counts(
                conn, tenant, unit_id, program.iri, program.version, descendants, [p.at for p in spans], clock
            )
        position = _checkpoint(await conn.fetchval(SELECT_CHECKPOINT))
    points = []
    for span, (headcount, certified) in zip(spans, counts):
        target, _, overdue = in_force(schedule, span.at)
        points.append({
            "period": span.label,
            "start": _iso(span.start),
            "end": _iso(span.end),
            "headcount": headcount,
            "certified": certified,
            "rate": certified / headcount if headcount else None,
            "target": progress(target, headcount, certified, overdue),
        })
    return {
        "unit": _unit_json(unit),
        "program": program.iri,
        "program_version": program.version,
        "descendants": descendants,
        "clock": clock,
        "interval": interval,
        "points": points,
        "position": position,
    }
