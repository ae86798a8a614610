"""Why a requirement falls short, in the console's language.

The competency API gives each gap a ``reason_code`` (one of
``projections.competency.standing.REASON_CODES``) beside its English
``reason``; the console words the code in the page's language with the
values of the gap's own fields.  A code this does not know (a later rule
version) is shown as the API's English ``reason`` (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lrs.console.i18n import MESSAGES

__all__ = ["PREFIX", "gap_reason"]

# A code's wording is the message ``gap_<code>`` of the console's catalogue
# (lrs.console.i18n.MESSAGES), with {level_needed}, {level_reached}, {score},
# {mastery_score}, {move_on}: the gap's fields (the last three of its best attempt).
PREFIX = "gap_"


def gap_reason(gap: Mapping[str, Any], language: str) -> str:
    """Why ``gap`` (a gap as the API gives it) falls short, in ``language``."""
    wordings = MESSAGES.get(PREFIX + str(gap.get("reason_code")))
    if wordings is None:
        return str(gap["reason"])
    attempt = gap.get("best_attempt") or {}
    try:
        return wordings.get(language, wordings["en"]).format(
            level_needed=gap.get("level_needed"), level_reached=gap.get("level_reached"),
            score=attempt.get("score"), mastery_score=attempt.get("mastery_score"), move_on=attempt.get("move_on"),
        )
    except (TypeError, ValueError):  # a field the wording needs is missing
        return str(gap["reason"])
