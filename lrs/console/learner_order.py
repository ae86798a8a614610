"""The order of a unit's learners on the unit page (pure).

The API pages a unit's learners in the projection's key order, which for
sealed learners is the pseudonym's: to an official, no order at all.  The
page lists them by what it shows: the identifier in clear (the roster has
no display names), case-insensitively; then learners shown by key only (never
given in clear), then erased ones, each by key.  That order needs every
learner at once, so it holds for a unit (with the units below it) of up to
:data:`SORTED_UP_TO` learners, cut into pages here (``from``); a larger unit
is paged in key order as the API gives it (``after``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["PAGE_SIZE", "SORTED_UP_TO", "by_shown", "page_of"]

PAGE_SIZE = 50
SORTED_UP_TO = 1000


def by_shown(learners: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """``learners`` (the API's rows with ``learner``, ``key``, ``erased``) in the order the page shows them."""
    return sorted(learners, key=lambda row: (
        row.get("learner") is None, bool(row.get("erased")), (row.get("learner") or "").casefold(), row.get("key") or "",
    ))


def page_of(answer: dict[str, Any], start: int) -> dict[str, Any]:
    """``answer`` (every learner of the unit, ``next_after`` None) as the page
    from ``start`` in the shown order, with ``next_from`` for the next one."""
    ordered = by_shown(answer["learners"])
    more = len(ordered) > start + PAGE_SIZE
    return {**answer, "learners": ordered[start:start + PAGE_SIZE], "next_from": start + PAGE_SIZE if more else None}
