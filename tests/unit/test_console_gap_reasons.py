"""The console says why a requirement falls short from the gap's reason code,
in Vietnamese and English, for every code the competency projection gives
(projections/competency/standing.py)."""

from __future__ import annotations

from types import SimpleNamespace

from lrs.console.gap_reasons import PREFIX, gap_reason
from lrs.console.i18n import MESSAGES
from projections.competency.standing import REASON_CODES, _reason


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
    (_evidence(passed=True, move_on="Completed"), None),
    (_evidence(score=0.9), None),
    (_evidence(passed=True, completed=True), None),
]


def _gap(best, reached):
    """The gap as the API gives it (Gap.json()'s fields the wording reads)."""
    code, english = _reason(best, 2, "CB2", reached)
    attempt = None if best is None else {
        "score": best.score, "mastery_score": best.mastery_score, "move_on": best.move_on,
    }
    return {"level_needed": "CB2", "level_reached": reached, "best_attempt": attempt,
            "reason_code": code, "reason": english}


def test_every_code_the_projection_gives_has_a_line_in_both_languages():
    assert {key[len(PREFIX):] for key in MESSAGES if key.startswith(PREFIX)} == set(REASON_CODES)
    for code in REASON_CODES:
        assert MESSAGES[PREFIX + code]["en"] and MESSAGES[PREFIX + code]["vi"], code
    reached = {_gap(best, reached)["reason_code"] for best, reached in CASES}
    assert reached == set(REASON_CODES)  # the cases reach every code, one each
    assert len(reached) == len(CASES)


def test_the_english_line_is_the_apis_reason_and_the_vietnamese_line_is_vietnamese():
    for best, reached in CASES:
        gap = _gap(best, reached)
        english = gap["reason"]
        assert gap_reason(gap, "en") == english
        vietnamese = gap_reason(gap, "vi")
        assert vietnamese != english, english
        for word in ("evidence", "score", "level", "failed", "passed", "completed", "met", "judged"):
            assert word not in vietnamese, (english, vietnamese)
        for value in ("0.50", "0.70", "0.40", "CB1", "CB2", "CompletedAndPassed", "(moveOn Completed)"):
            if value in english:
                assert value in vietnamese, (english, vietnamese)


def test_an_unknown_code_is_shown_as_the_apis_english_reason():
    later = {"reason_code": "a_later_rule", "reason": "a reason of a later rule version"}
    assert gap_reason(later, "vi") == "a reason of a later rule version"
    assert gap_reason({"reason": "no evidence"}, "vi") == "no evidence"  # an answer without codes
