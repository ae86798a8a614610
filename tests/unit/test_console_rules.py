"""The console's pure parts: languages, the scope rule per page, redirects, the chart."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from lrs.auth import Credential
from lrs.console import guard, i18n
from lrs.console.charts import Point, rate_chart
from lrs.console.paths import TEMPLATES_DIR


def credential(*scopes: str) -> Credential:
    return Credential(key="k", tenant="t", scopes=frozenset(scopes))


def test_both_languages_have_every_message() -> None:
    for key, texts in i18n.MESSAGES.items():
        assert set(texts) == set(i18n.LANGUAGES), key
        assert all(text.strip() for text in texts.values()), key


def test_every_message_a_template_uses_exists() -> None:
    used = set()
    for template in Path(TEMPLATES_DIR).glob("*.html"):
        used |= set(re.findall(r"""\bt\(\s*["']([a-z0-9_]+)["']\s*[,)]""", template.read_text()))
    # Built names: t("status_" ~ status) and t("kind_" ~ kind).
    used |= {f"status_{s}" for s in ("certified", "in_progress", "not_started", "mastered")}
    used |= {f"kind_{k}" for k in ("ministry", "agency", "unit")}
    used |= {f"retry_state_{s}" for s in ("requested", "working", "done", "failed")}
    used |= {f"projection_state_{s}" for s in ("starting", "running", "current", "behind", "rebuilding",
                                                "outdated", "stopped")}
    assert len(used) > 50 and not used - set(i18n.MESSAGES), sorted(used - set(i18n.MESSAGES))


@pytest.mark.parametrize(
    ("cookie", "header", "expected"),
    [
        (None, "vi-VN,vi;q=0.9,en;q=0.8", "vi"),
        (None, "fr-FR, en;q=0.5", "en"),
        (None, "en;q=0.3, vi;q=0.7", "vi"),
        (None, None, "en"),
        ("vi", "en", "vi"),
        ("xx", "vi", "vi"),
    ],
)
def test_language_choice(cookie, header, expected) -> None:
    assert i18n.choose_language(cookie, header) == expected


def test_local_text_prefers_the_language_then_english() -> None:
    texts = {"vi-VN": "Kỹ năng số", "en": "Digital skills"}
    assert i18n.local_text(texts, "vi") == "Kỹ năng số"
    assert i18n.local_text(texts, "en") == "Digital skills"
    assert i18n.local_text({"fr": "Compétences"}, "vi") == "Compétences"


def test_pages_follow_the_api_scope_rules() -> None:
    read_only = credential("all/read")
    assert guard.may(read_only, "GET", "units", "/console/units")
    assert guard.may(read_only, "GET", "credentials", "/console/credentials")
    assert not guard.may(read_only, "POST", "credential_revoke", "/console/credentials/{key}/revoke")
    assert not guard.may(read_only, "POST", "parked_retry", "/console/operations/parked/{position}/retry")
    admin = credential("all")
    assert guard.may(admin, "POST", "credential_revoke", "/console/credentials/{key}/revoke")
    writer = credential("statements/write", "statements/read/mine")
    assert guard.may(writer, "GET", "statements", "/console/statements")  # as GET /xapi/statements
    assert not guard.may(writer, "GET", "units", "/console/units")  # as GET /competency/units
    assert not guard.may(writer, "GET", "operations", "/console/operations")  # as GET /metrics
    assert not guard.may(credential("state"), "GET", "statements", "/console/statements")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("/console/units?x=1", "/console/units?x=1"), ("//evil.org/console/", "/console/"),
     ("https://evil.org/", "/console/"), (None, "/console/"), ("/console/\\evil", "/console/")],
)
def test_only_console_paths_after_sign_in(raw, expected) -> None:
    assert guard.safe_next(raw) == expected


def test_csrf_comparison() -> None:
    assert guard.csrf_matches("abc", "abc")
    assert not guard.csrf_matches("abc", "abd")
    assert not guard.csrf_matches(None, "abc") and not guard.csrf_matches("", "")


def test_chart_draws_the_rate_and_the_target() -> None:
    start = datetime(2025, 1, 1, tzinfo=timezone.utc)
    points = [Point(start + timedelta(days=30 * i), rate) for i, rate in enumerate([None, 0.0, 0.25, 0.5])]
    svg = rate_chart(points, [Point(start, 0.8)], title="T <x>", rate_label="rate", target_label="target")
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert "T &lt;x&gt;" in svg  # text is escaped
    (polyline,) = re.findall(r'<polyline class="rate" points="([^"]+)"', svg)
    assert len(polyline.split()) == 3  # the point with nobody rostered is left out
    ys = [float(pair.split(",")[1]) for pair in polyline.split()]
    assert ys == sorted(ys, reverse=True)  # a rising rate goes up the chart
    assert 'class="target"' in svg and "80%" in svg
    assert rate_chart([], [], title="t", rate_label="r", target_label="x") == ""


def test_an_error_status_has_a_message_in_both_languages() -> None:
    from lrs.console.render import status_message

    assert [status_message(s) for s in (400, 403, 404, 409, 503)] == [
        "bad_request", "forbidden", "not_found", "bad_request", "unavailable"]
    for status in (400, 403, 404, 503):
        assert set(i18n.MESSAGES[status_message(status)]) == set(i18n.LANGUAGES)


def test_a_projection_state_is_worded_in_each_language_and_a_later_one_as_named() -> None:
    assert i18n.projection_state_word("rebuilding", "vi") == "đang dựng lại"
    assert i18n.projection_state_word("rebuilding", "en") == "rebuilding"
    assert i18n.projection_state_word("paused", "vi") == "paused"  # a state of a later version
