"""The console's Vietnamese pages say why a requirement falls short in Vietnamese,
for every reason the competency projection gives (projections/competency/standing.py)."""

from __future__ import annotations

from types import SimpleNamespace

from lrs.console.gap_reasons import local_reason
from projections.competency.standing import _reason


def _evidence(**fields):
    base = dict(level_rank=2, score=None, mastery_score=None, passed=None, completed=False, move_on="Passed")
    return SimpleNamespace(**{**base, **fields})


# One evidence per branch of _reason (needed level rank 2, code CB2).
CASES = [
    (None, None),
    (_evidence(level_rank=1), "CB1"),
    (_evidence(level_rank=1), None),
    (_evidence(score=0.5, mastery_score=0.7, passed=False), None),
    (_evidence(passed=False), None),
    (_evidence(passed=False, score=0.4), None),
    (_evidence(passed=True, move_on="CompletedAndPassed"), None),
    (_evidence(completed=True, move_on="CompletedAndPassed"), None),
    (_evidence(score=0.9), None),
    (_evidence(passed=True, completed=True), None),
]


def test_every_reason_the_projection_gives_reads_in_vietnamese():
    seen = set()
    for best, reached in CASES:
        english = _reason(best, 2, "CB2", reached)
        vietnamese = local_reason(english, "vi")
        assert vietnamese != english, english
        for word in ("evidence", "score", "level", "failed", "passed", "completed", "met", "judged"):
            assert word not in vietnamese, (english, vietnamese)
        for number in ("0.50", "0.70", "0.40", "CB1", "CB2"):
            if number in english:
                assert number in vietnamese, (english, vietnamese)
        seen.add(english)
    assert len(seen) == len(CASES)  # each case reached a different branch


def test_english_and_unknown_reasons_are_shown_as_written():
    assert local_reason("best score 0.50 < mastery score 0.70", "en") == "best score 0.50 < mastery score 0.70"
    assert local_reason("a reason of a later rule version", "vi") == "a reason of a later rule version"
