"""Why a requirement falls short, in the console's language.

The competency API gives each gap a ``reason_code`` (one of
``projections.competency.standing.REASON_CODES``) beside its English
``reason``; the console words the code in the page's language with the
values of the gap's own fields.  A code this does not know (a later rule
version) is shown as the API's English ``reason`` (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["REASONS", "gap_reason"]

# code -> language -> wording; {level_needed}, {level_reached}, {score},
# {mastery_score}, {move_on} are the gap's fields (the last three of its best attempt).
REASONS: dict[str, dict[str, str]] = {
    "no_evidence": {"en": "no evidence", "vi": "chưa có minh chứng"},
    "reached_below_level": {
        "en": "reached {level_reached} below the level needed ({level_needed})",
        "vi": "đạt {level_reached}, dưới mức cần ({level_needed})",
    },
    "evidence_below_level": {
        "en": "evidence only below the level needed ({level_needed})",
        "vi": "chỉ có minh chứng dưới mức cần ({level_needed})",
    },
    "score_below_mastery": {
        "en": "best score {score:.2f} < mastery score {mastery_score:.2f}",
        "vi": "điểm cao nhất {score:.2f} < ngưỡng đạt {mastery_score:.2f}",
    },
    "failed": {"en": "failed", "vi": "không đạt"},
    "failed_with_score": {"en": "failed with score {score:.2f}", "vi": "không đạt, điểm {score:.2f}"},
    "passed_not_completed": {
        "en": "passed, not completed (moveOn {move_on})",
        "vi": "đã đạt, chưa hoàn thành (moveOn {move_on})",
    },
    "completed_not_passed": {
        "en": "completed, not passed (moveOn {move_on})",
        "vi": "đã hoàn thành, chưa đạt (moveOn {move_on})",
    },
    "scored_not_judged": {
        "en": "scored, not judged (no masteryScore)",
        "vi": "có điểm, chưa được đánh giá (không có masteryScore)",
    },
    "not_yet_met": {"en": "not yet met", "vi": "chưa đáp ứng"},
}


def gap_reason(gap: Mapping[str, Any], language: str) -> str:
    """Why ``gap`` (a gap as the API gives it) falls short, in ``language``."""
    wordings = REASONS.get(gap.get("reason_code") or "")
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
