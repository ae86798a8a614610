"""Why a requirement falls short, in the console's language.

The competency projection words each reason once, in English
(``projections.competency.standing``), for the JSON API and the reports; the
console's Vietnamese pages show the same reason in Vietnamese.  A reason this
does not know is shown as the projection wrote it (pure)."""

from __future__ import annotations

import re

__all__ = ["local_reason"]

_NUMBER = r"(-?\d+(?:\.\d+)?)"

# (English pattern, Vietnamese text with the pattern's groups as {0}, {1}...)
_VI: tuple[tuple[re.Pattern[str], str], ...] = tuple((re.compile(pattern), text) for pattern, text in (
    (r"no evidence", "chưa có minh chứng"),
    (r"reached (\S+) below the level needed \((\S+)\)", "đạt {0}, dưới mức cần ({1})"),
    (r"evidence only below the level needed \((\S+)\)", "chỉ có minh chứng dưới mức cần ({0})"),
    (rf"best score {_NUMBER} < mastery score {_NUMBER}", "điểm cao nhất {0} < ngưỡng đạt {1}"),
    (r"failed", "không đạt"),
    (rf"failed with score {_NUMBER}", "không đạt, điểm {0}"),
    (r"passed, not completed \(moveOn (\w+)\)", "đã đạt, chưa hoàn thành (moveOn {0})"),
    (r"completed, not passed \(moveOn (\w+)\)", "đã hoàn thành, chưa đạt (moveOn {0})"),
    (r"scored, not judged \(no masteryScore\)", "có điểm, chưa được đánh giá (không có masteryScore)"),
    (r"not yet met", "chưa đáp ứng"),
))


def local_reason(reason: str, language: str) -> str:
    """``reason`` (as the projection words it) in ``language``."""
    if language != "vi":
        return reason
    for pattern, text in _VI:
        match = pattern.fullmatch(reason)
        if match:
            return text.format(*match.groups())
    return reason
