"""The target a unit is held to: which share of its roster should be certified, by when.

Pure.  A programme carries either one undated ``target_rate`` or a dated
schedule (``targets``: rate and due date, for every unit or for one unit and
the units below it).  A unit follows the schedule of the nearest of itself
and its ancestors that has one, else the programme-wide schedule.

At a moment, the target *in force* is the first one whose due date has not
passed yet (due at the end of its ``by`` day, UTC); once all have passed, the
last one stays in force, overdue.  The *next* target is the one after the
one in force.  :func:`progress` compares a headcount and a certified count
with a target: the learners it needs (rounded up) and the gap (how many more
must be certified; 0 once met).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Sequence

from msgspec import UNSET

from projections.competency.frameworks import Program

__all__ = ["Target", "program_target", "schedule_for", "in_force", "needed", "progress"]


@dataclass(frozen=True, slots=True)
class Target:
    rate: float
    due: str | None  # ISO date the rate is due by (end of that day, UTC); None: no date
    source: str  # "program", or "unit:<id>" for a unit's own schedule

    @property
    def due_at(self) -> datetime | None:
        """The instant the target falls due (the start of the day after ``due``)."""
        if self.due is None:
            return None
        return datetime.combine(date.fromisoformat(self.due) + timedelta(days=1), time(), tzinfo=timezone.utc)


def schedule_for(program: Program, units_up: Sequence[str]) -> list[Target]:
    """The targets that apply to the unit whose id and ancestors' ids (nearest
    first) are ``units_up``, in due order."""
    for unit in units_up:
        own = [Target(r.rate, r.by, f"unit:{unit}") for r in program.targets if r.unit == unit]
        if own:
            return sorted(own, key=lambda t: t.due or "")
    common = [Target(r.rate, r.by, "program") for r in program.targets if r.unit is UNSET]
    if common:
        return sorted(common, key=lambda t: t.due or "")
    return [] if program.target_rate is UNSET else [Target(float(program.target_rate), None, "program")]


def program_target(program: Program) -> Target | None:
    """The programme-wide target in force now is not needed here: the undated
    ``target_rate``, if the programme has one (kept for callers without a unit)."""
    return None if program.target_rate is UNSET else Target(float(program.target_rate), None, "program")


def in_force(schedule: Sequence[Target], moment: datetime) -> tuple[Target | None, Target | None, bool]:
    """(the target in force at ``moment``, the next one, whether the one in force is overdue)."""
    if not schedule:
        return None, None, False
    for index, target in enumerate(schedule):
        due_at = target.due_at
        if due_at is None or moment < due_at:
            return target, schedule[index + 1] if index + 1 < len(schedule) else None, False
    return schedule[-1], None, True


def needed(rate: float, headcount: int) -> int:
    """Certified learners the rate asks for (rounded up)."""
    return math.ceil(rate * headcount - 1e-9)


def progress(target: Target | None, headcount: int, certified: int, overdue: bool = False) -> dict[str, Any] | None:
    """The target's JSON with where the counts stand against it."""
    if target is None:
        return None
    rate = certified / headcount if headcount else None
    want = needed(target.rate, headcount)
    return {
        "rate": target.rate,
        "due": target.due,
        "source": target.source,
        "overdue": overdue,
        "needed": want,
        "gap": max(0, want - certified),
        "difference": None if rate is None else rate - target.rate,
        "met": None if rate is None else rate >= target.rate,
    }
