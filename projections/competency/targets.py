"""The target a unit is held to: which share of its roster should be certified.

Pure.  A target is a rate (0..1), the date it is due by (None: no date),
and where it comes from.  :func:`progress` compares a headcount and a
certified count with it: the learners the target needs (rounded up) and
the gap (how many more must be certified; 0 once met).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from msgspec import UNSET

from projections.competency.frameworks import Program

__all__ = ["Target", "program_target", "needed", "progress"]


@dataclass(frozen=True, slots=True)
class Target:
    rate: float
    due: str | None  # ISO date the rate is due by; None: no date
    source: str  # "program", or "unit:<id>" for a unit's own schedule


def program_target(program: Program) -> Target | None:
    """The programme's single undated ``target_rate``, if it has one."""
    if program.target_rate is UNSET:
        return None
    return Target(float(program.target_rate), None, "program")


def needed(rate: float, headcount: int) -> int:
    """Certified learners the rate asks for (rounded up)."""
    return math.ceil(rate * headcount - 1e-9)


def progress(target: Target | None, headcount: int, certified: int) -> dict[str, Any] | None:
    """The target's JSON with where the counts stand against it."""
    if target is None:
        return None
    rate = certified / headcount if headcount else None
    want = needed(target.rate, headcount)
    return {
        "rate": target.rate,
        "due": target.due,
        "source": target.source,
        "needed": want,
        "gap": max(0, want - certified),
        "difference": None if rate is None else rate - target.rate,
        "met": None if rate is None else rate >= target.rate,
    }
