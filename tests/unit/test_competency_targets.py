"""Dated target schedules (targets.py), the periods of a series (series.py) and the known clock of a certification."""

from __future__ import annotations

from datetime import date, datetime, timezone

import msgspec
import pytest

from projections.competency.frameworks import FrameworkError, Program, parse_document
from projections.competency.policy import VERB_COMPLETED, fold, interpret
from projections.competency.series import MAX_POINTS, periods
from projections.competency.targets import in_force, progress, schedule_for
from tests.unit.test_competency_fold import CATALOG, COURSE, LEARNER, PROGRAM_KEY, REQUIRED, sid

(SHIPPED,) = CATALOG.programs


def program(**changes: object) -> Program:
    body = msgspec.to_builtins(SHIPPED)
    body.pop("target_rate", None)
    body.update(changes)
    document = parse_document(msgspec.json.encode(body))
    assert isinstance(document, Program)
    return document


SCHEDULE = program(targets=[
    {"rate": 1.0, "by": "2026-12-31"}, {"rate": 0.4, "by": "2025-12-31"},
    {"rate": 0.5, "by": "2025-12-31", "unit": "mic-dt"},
])


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


def test_the_target_in_force_is_the_first_not_yet_due_and_the_last_stays_overdue() -> None:
    schedule = schedule_for(SCHEDULE, ["mic"])
    assert [(t.rate, t.due) for t in schedule] == [(0.4, "2025-12-31"), (1.0, "2026-12-31")]
    now, following, overdue = in_force(schedule, at("2025-12-31T23:59:59"))
    assert (now.rate, following.rate, overdue) == (0.4, 1.0, False)  # due at the end of its day
    now, following, overdue = in_force(schedule, at("2026-01-01T00:00:00"))
    assert (now.rate, following, overdue) == (1.0, None, False)
    now, following, overdue = in_force(schedule, at("2027-02-01T00:00:00"))
    assert (now.rate, following, overdue) == (1.0, None, True)


def test_a_unit_follows_the_nearest_schedule_of_its_own_or_its_ancestors() -> None:
    own = schedule_for(SCHEDULE, ["mic-dt-1", "mic-dt", "mic"])
    assert [(t.rate, t.source) for t in own] == [(0.5, "unit:mic-dt")]
    assert schedule_for(program(target_rate=0.8), ["x"])[0].due is None
    assert schedule_for(program(), ["x"]) == []


def test_progress_names_needed_and_gap() -> None:
    target = schedule_for(SCHEDULE, ["mic"])[0]
    assert progress(target, 10, 3) == {
        "rate": 0.4, "due": "2025-12-31", "source": "program", "overdue": False, "needed": 4, "gap": 1,
        "difference": pytest.approx(-0.1), "met": False}
    assert progress(target, 0, 0)["rate"] == 0.4 and progress(target, 0, 0)["met"] is None


@pytest.mark.parametrize(("changes", "path"), [
    ({"targets": [{"rate": 0.4, "by": "2025-13-01"}]}, "$.targets[0].by"),
    ({"targets": [{"rate": 1.4, "by": "2025-12-01"}]}, "$.targets[0].rate"),
    ({"targets": [{"rate": 0.4, "by": "2025-12-01"}, {"rate": 0.5, "by": "2025-12-01"}]}, "$.targets[1]"),
    ({"targets": [{"rate": 0.4, "by": "2025-12-01"}], "target_rate": 0.5}, "$.targets"),
])
def test_a_bad_schedule_is_refused_at_its_path(changes: dict, path: str) -> None:
    with pytest.raises(FrameworkError) as caught:
        program(**changes)
    assert caught.value.path == path


def test_periods_are_days_weeks_from_monday_and_calendar_months() -> None:
    months = periods(date(2025, 1, 15), date(2026, 12, 2), "month")
    assert len(months) == 24 and months[0].label == "2025-01" and months[-1].label == "2026-12"
    assert months[1].start == at("2025-02-01T00:00:00") and months[1].end == at("2025-03-01T00:00:00")
    weeks = periods(date(2025, 3, 5), date(2025, 3, 10), "week")
    assert [w.label for w in weeks] == ["2025-W10", "2025-W11"] and weeks[0].start == at("2025-03-03T00:00:00")
    assert len(periods(date(2025, 3, 5), date(2025, 3, 5), "day")) == 1
    with pytest.raises(ValueError, match="before"):
        periods(date(2025, 3, 5), date(2025, 3, 4), "day")
    with pytest.raises(ValueError, match=f"more than {MAX_POINTS}"):
        periods(date(2020, 1, 1), date(2025, 1, 1), "day")


def test_a_certification_is_known_when_the_last_needed_evidence_was_stored() -> None:
    events = []
    for i, (module, verb, result) in enumerate(REQUIRED):
        stored = "2025-04-01T00:00:00Z" if i != 3 else "2025-06-01T00:00:00Z"  # one module stored late
        body = {"id": sid(i + 1), "actor": {"mbox": "mailto:learner@example.gov.vn"}, "verb": {"id": verb},
                "object": {"id": f"{COURSE}/modules/{module}"}, "timestamp": f"2025-03-01T08:{i:02d}:00Z",
                "stored": stored, "result": result}
        events.append(interpret(body, CATALOG))
    # and the same module passed again, stored earlier, on another registration: known from then
    events.append(interpret({"id": sid(50), "actor": {"mbox": "mailto:learner@example.gov.vn"},
                             "verb": {"id": VERB_COMPLETED}, "object": {"id": f"{COURSE}/modules/{REQUIRED[3][0]}"},
                             "timestamp": "2025-03-02T08:00:00Z", "stored": "2025-05-01T00:00:00Z",
                             "result": {"completion": True}}, CATALOG))
    certification = fold(LEARNER, events, CATALOG).certifications[PROGRAM_KEY]
    assert certification.earned_at == "2025-03-01T08:09:00.000000Z"  # achieved: by timestamps
    assert certification.known_at == "2025-05-01T00:00:00.000000Z"  # known: by stored times


@pytest.mark.parametrize("interval", ["day", "week", "month"])
def test_periods_that_would_end_after_the_year_9999_are_refused(interval: str) -> None:
    with pytest.raises(ValueError, match="ends after 9999-12-31"):
        periods(date(9999, 12, 1), date(9999, 12, 31), interval)
    assert periods(date(9999, 11, 1), date(9999, 11, 30), "month")[-1].end.date() == date(9999, 12, 1)
