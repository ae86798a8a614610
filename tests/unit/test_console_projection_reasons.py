"""The console says why the competency projection is not current from the
reason code and values the API gives (projections/freshness_reasons.py), in
Vietnamese and English, for every code there is; the pages' notice shows it."""

from __future__ import annotations

from typing import Any

import jinja2
import pytest

from lrs.console import guard
from lrs.console.i18n import MESSAGES
from lrs.console.projection_reasons import PREFIX, projection_reason
from lrs.console.render import page_context
from projections.freshness_reasons import REASON_CODES, Reason
from projections.supervisor import Freshness

BUILT = {"projection": "competency", "built_rules": 3, "built_digest": "b" * 64, "rules": 4, "digest": "c" * 64}
DISK = {"error_kind": "OSError", "error": "OSError(28, 'No space left on device')"}
# The values each code carries, as the supervisor and /ready give them.
VALUES: dict[str, dict[str, Any]] = {
    "starting": {}, "frameworks_changed": {}, "other_replay": {}, "stopping": {},
    "behind": {"events": 12, "age_s": 95},
    "rebuilding_itself": BUILT, "rebuilds_itself": BUILT, "no_auto_rebuild": BUILT, "built_with_other": BUILT,
    "rebuild_failed": DISK, "log_chain_broken": {"position": 4711}, "checkpoint_unreadable": DISK, "runner_failed": DISK,
    "frameworks_unreadable": {"error": "civil-servant.program.json: not JSON"},
}
# The state the projection is in with each code (the notice names it).
STATES = {"starting": "starting", "frameworks_changed": "rebuilding", "other_replay": "rebuilding", "stopping": "stopped",
          "behind": "behind", "rebuilding_itself": "rebuilding", "rebuilds_itself": "outdated",
          "no_auto_rebuild": "outdated", "built_with_other": "outdated", "rebuild_failed": "stopped", "log_chain_broken": "stopped",
          "checkpoint_unreadable": "stopped", "runner_failed": "stopped", "frameworks_unreadable": "stopped"}
ENGLISH_WORDS = ("projection", "rebuild", "service", "behind", "events", "stored", "built", "frameworks", "failed",
                 "cannot", "runner", "replay of", "stopping", "these are", "starting")


def _why(code: str) -> dict[str, Any]:
    return Reason.of(code, **VALUES[code]).json()


def test_every_code_the_projection_gives_has_words_in_both_languages() -> None:
    assert set(VALUES) == set(REASON_CODES) == set(STATES)  # a new code needs its values here
    assert {key[len(PREFIX):] for key in MESSAGES if key.startswith(PREFIX)} == set(REASON_CODES)
    for code in REASON_CODES:
        assert MESSAGES[PREFIX + code]["en"] and MESSAGES[PREFIX + code]["vi"], code


@pytest.mark.parametrize("code", REASON_CODES)
def test_the_english_words_are_the_apis_reason_and_the_vietnamese_keep_the_values(code: str) -> None:
    why = _why(code)
    assert projection_reason(why, "en") == why["reason"]
    vietnamese = projection_reason(why, "vi")
    assert vietnamese != why["reason"]
    for word in ENGLISH_WORDS:
        assert word not in vietnamese.replace("lrs replay competency", ""), (word, vietnamese)
    for value in ("12", "95", "4711", "bbbbbbbbbbbb", "cccccccccccc", DISK["error"], VALUES["frameworks_unreadable"]["error"]):
        if value in why["reason"]:
            assert value in vietnamese, (value, vietnamese)
    assert "b" * 13 not in vietnamese  # a digest shown by its first 12 characters, as in English


def test_counts_are_written_as_the_console_writes_numbers() -> None:
    why = Reason.of("behind", events=1234, age_s=3600).json()
    assert projection_reason(why, "vi") == (
        "phép chiếu chậm 1,234 sự kiện so với nhật ký, sự kiện cũ nhất được lưu cách đây 3,600 giây")
    assert projection_reason(why, "en") == "the projection is 1,234 events behind the log, the oldest stored 3,600 s ago"
    assert why["reason"] == "the projection is 1234 events behind the log, the oldest stored 3600 s ago"  # the API's, as ever


def test_a_code_or_values_of_a_later_version_show_the_english_reason() -> None:
    later = {"reason_code": "paused_by_operator", "reason_values": {}, "reason": "paused by an operator"}
    assert projection_reason(later, "vi") == "paused by an operator"
    other_values = {"reason_code": "behind", "reason_values": {"lag": 3}, "reason": "the projection is 3 events behind"}
    assert projection_reason(other_values, "vi") == "the projection is 3 events behind"
    assert projection_reason({"reason": "stopped"}, "vi") == "stopped"  # an answer without codes


class _Request(dict):  # type: ignore[type-arg]
    """What page_context reads of a request: its keys and path."""

    path_qs = "/console/units/mic"


def _notice(fresh: Freshness, language: str) -> str:
    env = jinja2.Environment(loader=jinja2.PackageLoader("lrs.console", "templates"),
                             autoescape=jinja2.select_autoescape(["html"]), undefined=jinja2.StrictUndefined)
    page = env.get_template("base.html").render(page_context(_Request({guard.LANGUAGE: language, guard.FRESHNESS: fresh})))
    start = page.index('<span id="freshness-reason"')
    return page[page.index(">", start) + 1:page.index("</span>", start)]


@pytest.mark.parametrize("code", [code for code in REASON_CODES if code != "frameworks_unreadable"])  # /ready only
def test_the_pages_notice_shows_why_in_vietnamese_for_each_state(code: str) -> None:
    from markupsafe import escape

    fresh = Freshness(STATES[code], Reason.of(code, **VALUES[code]), False, None, 40, 52, 95.0)
    assert _notice(fresh, "vi") == escape(MESSAGES[PREFIX + code]["vi"].format(**VALUES[code]))
    assert _notice(fresh, "en") == escape(fresh.reason)
