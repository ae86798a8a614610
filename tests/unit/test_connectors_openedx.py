"""Open edX tracking-log lines -> xAPI (pure mapping) and the .gz source.

The lines follow the documented tracking-log format (top-level ``event_type``,
``event_source``, ``time``, ``context``, ``event``; browser events carry
``event`` as a JSON string).
"""

from __future__ import annotations

import gzip
import json

import pytest

from connectors.framework.lines import Line
from connectors.framework.model import Mapped, Skip, SourceItem
from connectors.openedx import vocabulary as V
from connectors.openedx.mapping import OpenEdxOptions, map_tracking_line
from connectors.openedx.source import tracking_log_source

PLATFORM = "https://lms.example.org"
COURSE = "course-v1:edX+DemoX+Demo_Course"
OPTIONS = OpenEdxOptions(PLATFORM)


def log_line(event_type, event, *, source="server", user_id=42, username="learner",
             time="2024-03-05T10:11:12.345678+00:00", **context):
    ctx = {"course_id": COURSE, "org_id": "edX", "user_id": user_id, "path": "/x"}
    ctx.update(context)
    record = {
        "username": username, "event_type": event_type, "event_source": source,
        "time": time, "host": "lms.example.org", "ip": "10.0.0.1", "agent": "Mozilla/5.0",
        "page": None, "session": "e5c0b1", "context": ctx,
        "event": json.dumps(event) if source == "browser" else event,
    }
    if source == "browser":
        record["name"] = event_type
    return json.dumps(record)


def mapped(line: str, options: OpenEdxOptions = OPTIONS) -> dict:
    result = map_tracking_line(SourceItem("t:1", Line("t", 1, line.encode())), options)
    assert isinstance(result, Mapped), result
    [statement] = result.statements
    return statement


def skipped(line: str, options: OpenEdxOptions = OPTIONS) -> Skip:
    result = map_tracking_line(SourceItem("t:1", Line("t", 1, line.encode())), options)
    assert isinstance(result, Skip), result
    return result


def test_enrollment_activated_is_registered_in_the_course():
    s = mapped(log_line("edx.course.enrollment.activated",
                        {"course_id": COURSE, "user_id": 42, "mode": "audit"}))
    assert s["actor"] == {"objectType": "Agent", "account": {"homePage": PLATFORM, "name": "42"}}
    assert s["verb"]["id"] == V.REGISTERED == "http://adlnet.gov/expapi/verbs/registered"
    assert s["object"]["id"] == f"{PLATFORM}/course/{COURSE}"
    assert s["object"]["definition"]["type"] == "http://adlnet.gov/expapi/activities/course"
    assert s["object"]["definition"]["extensions"] == {V.MODE: "audit"}
    assert s["timestamp"] == "2024-03-05T10:11:12.345678+00:00"


def test_enrollment_deactivated_is_unregistered():
    s = mapped(log_line("edx.course.enrollment.deactivated", {"course_id": COURSE, "user_id": 42, "mode": "audit"}))
    assert s["verb"]["id"] == "http://id.tincanapi.com/verb/unregistered"


PROBLEM = "block-v1:edX+DemoX+Demo_Course+type@problem+block@3fc5461f86764ad7bdbdf6cbdde61e66"


def problem_check_event(grade, max_grade, success):
    return {
        "problem_id": PROBLEM, "grade": grade, "max_grade": max_grade, "success": success,
        "attempts": 2, "answers": {"3fc5461f86764ad7bdbdf6cbdde61e66_2_1": "choice_1"},
        "correct_map": {}, "state": {},
        "submission": {"3fc5461f86764ad7bdbdf6cbdde61e66_2_1": {
            "question": "Which?", "answer": "a chair", "response_type": "multiplechoiceresponse",
            "input_type": "choicegroup", "correct": success == "correct", "variant": ""}},
    }


def test_server_problem_check_carries_the_score_and_success():
    s = mapped(log_line("problem_check", problem_check_event(2, 4, "incorrect"),
                        module={"display_name": "Checkpoint", "usage_key": PROBLEM}))
    assert s["verb"]["id"] == "https://w3id.org/xapi/acrossx/verbs/evaluated"
    assert s["object"]["id"] == f"{PLATFORM}/xblock/{PROBLEM}"
    definition = s["object"]["definition"]
    assert definition["type"] == "http://adlnet.gov/expapi/activities/cmi.interaction"
    assert definition["interactionType"] == "choice"
    assert definition["extensions"] == {V.ATTEMPT: 2}
    assert definition["name"] == {"en": "Checkpoint"}
    assert s["result"]["score"] == {"min": 0, "max": 4, "raw": 2, "scaled": 0.5}
    assert s["result"]["success"] is False
    assert s["result"]["response"] == "choice_1"
    assert s["context"]["contextActivities"]["parent"][0]["id"] == f"{PLATFORM}/course/{COURSE}"


def test_correct_problem_check_succeeds_and_zero_max_grade_scales_to_zero():
    assert mapped(log_line("problem_check", problem_check_event(3, 3, "correct")))["result"]["success"] is True
    assert mapped(log_line("problem_check", problem_check_event(0, 0, "incorrect")))["result"]["score"]["scaled"] == 0.0


def test_browser_problem_check_is_reported_not_mapped():
    skip = skipped(log_line("problem_check", "input_3fc5_2_1=choice_1", source="browser"))
    assert skip.kind.startswith("problem_check (browser")


def test_subsection_grade_is_earned_with_weighted_score():
    block = "block-v1:edX+DemoX+Demo_Course+type@sequential+block@a2184f8e"
    s = mapped(log_line("edx.grades.subsection.grade_calculated", {
        "user_id": "42", "course_id": COURSE, "block_id": block, "weighted_total_earned": 3.0,
        "weighted_total_possible": 4.0, "weighted_graded_earned": 3.0, "weighted_graded_possible": 4.0}))
    assert s["verb"]["id"] == "http://id.tincanapi.com/verb/earned"
    assert s["object"] == {"objectType": "Activity", "id": f"{PLATFORM}/xblock/{block}",
                           "definition": {"type": "http://id.tincanapi.com/activitytype/resource"}}
    assert s["result"] == {"score": {"min": 0, "max": 4.0, "raw": 3.0, "scaled": 0.75}, "success": False}


def test_course_grade_is_earned_with_letter_grade():
    s = mapped(log_line("edx.grades.course.grade_calculated", {
        "user_id": "42", "course_id": COURSE, "percent_grade": 0.82, "letter_grade": "Pass", "course_version": "x"}))
    assert s["verb"]["id"] == V.EARNED
    assert s["object"]["id"] == f"{PLATFORM}/course/{COURSE}"
    assert s["result"]["score"] == {"min": 0, "max": 1.0, "raw": 0.82, "scaled": 0.82}
    assert s["result"]["extensions"] == {V.GRADE_CLASSIFICATION: "Pass"}


@pytest.mark.parametrize("event_type, verb", [
    ("edx.course.completed", "http://adlnet.gov/expapi/verbs/completed"),
    ("edx.course.grade.passed.first_time", "http://adlnet.gov/expapi/verbs/passed"),
    ("edx.course.grade.now_passed", "http://adlnet.gov/expapi/verbs/passed"),
    ("edx.course.grade.now_failed", "http://adlnet.gov/expapi/verbs/failed"),
])
def test_course_completion_and_passing(event_type, verb):
    s = mapped(log_line(event_type, {"user_id": 42, "course_id": COURSE}))
    assert s["verb"]["id"] == verb
    assert s["object"]["id"] == f"{PLATFORM}/course/{COURSE}"


def test_certificate_created_is_earned_certificate():
    s = mapped(log_line("edx.certificate.created", {
        "user_id": 42, "course_id": COURSE, "certificate_id": "c0ffee", "enrollment_mode": "verified",
        "certificate_url": "https://lms.example.org/certificates/c0ffee", "generation_mode": "batch"}))
    assert s["verb"]["id"] == V.EARNED
    assert s["object"]["id"] == f"{PLATFORM}/certificates/c0ffee"
    assert s["object"]["definition"]["type"] == V.CERTIFICATE
    assert s["object"]["definition"]["extensions"] == {V.MODE: "verified"}


VIDEO_ID = "0b9e39477cf34507a7a48f74be381fdd"
VIDEO_IRI = f"{PLATFORM}/xblock/block-v1:edX+DemoX+Demo_Course+type@video+block@{VIDEO_ID}"


@pytest.mark.parametrize("event_type, verb", [
    ("play_video", "https://w3id.org/xapi/video/verbs/played"),
    ("edx.video.played", "https://w3id.org/xapi/video/verbs/played"),
    ("pause_video", "https://w3id.org/xapi/video/verbs/paused"),
    ("stop_video", "http://adlnet.gov/expapi/verbs/terminated"),
])
def test_video_play_pause_stop_carry_the_current_time(event_type, verb):
    s = mapped(log_line(event_type, {"id": VIDEO_ID, "currentTime": 12.5, "code": "html5", "duration": 195},
                        source="browser"))
    assert s["verb"]["id"] == verb
    assert s["object"] == {"objectType": "Activity", "id": VIDEO_IRI,
                           "definition": {"type": "https://w3id.org/xapi/video/activity-type/video"}}
    assert s["result"]["extensions"] == {V.VIDEO_TIME: 12.5}
    assert s["context"]["extensions"] == {V.VIDEO_LENGTH: 195.0}


def test_video_seek_has_time_from_and_to():
    s = mapped(log_line("seek_video", {"id": VIDEO_ID, "old_time": 194.381, "new_time": 10, "type": "onSlideSeek",
                                       "code": "html5"}, source="browser"))
    assert s["verb"]["id"] == "https://w3id.org/xapi/video/verbs/seeked"
    assert s["result"]["extensions"] == {V.VIDEO_TIME_FROM: 194.381, V.VIDEO_TIME_TO: 10.0}


def test_video_complete_is_completion():
    s = mapped(log_line("complete_video", {"id": VIDEO_ID, "duration": 195, "code": "html5"}, source="browser"))
    assert s["verb"]["id"] == "http://adlnet.gov/expapi/verbs/completed"
    assert s["result"]["completion"] is True
    assert s["result"]["duration"] == "PT195S"


def test_page_view_is_experienced_page_and_posts_are_not_page_views():
    path = f"/courses/{COURSE}/courseware/intro/"
    s = mapped(log_line(path, {"POST": {}, "GET": {}}))
    assert s["verb"]["id"] == "http://adlnet.gov/expapi/verbs/experienced"
    assert s["object"]["id"] == PLATFORM + path
    assert skipped(log_line(path, {"POST": {"answer": ["1"]}, "GET": {}})).kind.startswith("server request")


def test_actor_is_never_the_email_and_can_come_from_a_map_or_the_username():
    line = log_line("edx.course.completed", {"user_id": 42, "course_id": COURSE}, username="learner",
                    email="learner@example.org")
    assert "learner@example.org" not in json.dumps(mapped(line))
    assert mapped(line, OpenEdxOptions(PLATFORM, actor_id="username"))["actor"]["account"]["name"] == "learner"
    anon = OpenEdxOptions(PLATFORM, actor_map={"42": "a1b2c3"})
    assert mapped(line, anon)["actor"]["account"]["name"] == "a1b2c3"
    assert skipped(line, OpenEdxOptions(PLATFORM, actor_map={})).kind == "user not in the actor map"


def test_anonymous_and_unknown_events_are_skipped_by_type():
    assert skipped(log_line("edx.course.completed", {"course_id": COURSE}, user_id=None)).kind == "anonymous user"
    assert skipped(log_line("edx.forum.thread.created", {"title": "hi"})).kind == "edx.forum.thread.created"
    assert skipped("{not json").kind == "invalid JSON"
    assert skipped(log_line("edx.certificate.created", {"course_id": COURSE})).kind == \
        "edx.certificate.created (missing certificate_id)"


def test_statement_ids_are_deterministic_per_event():
    line = log_line("edx.course.completed", {"user_id": 42, "course_id": COURSE})
    reordered = json.dumps(json.loads(line), sort_keys=True, indent=2)  # same event, other spelling
    other = log_line("edx.course.completed", {"user_id": 43, "course_id": COURSE}, user_id=43)
    assert mapped(line)["id"] == mapped(reordered.replace("\n", " "))["id"]
    assert mapped(line)["id"] != mapped(other)["id"]


async def test_gzip_tracking_log_is_read_and_resumed_from_the_cursor(tmp_path):
    lines = [log_line("edx.course.completed", {"user_id": n, "course_id": COURSE}, user_id=n) for n in range(25)]
    path = tmp_path / "tracking.log-20240305.gz"
    with gzip.open(path, "wt") as handle:
        handle.write("\n".join(lines[:10]) + "\n\n" + "\n".join(lines[10:]) + "\n")
    source = tracking_log_source([str(path)], chunk_lines=10)
    chunks = [chunk async for chunk in source.chunks(None)]
    assert sum(len(c.items) for c in chunks) == 25
    assert sum(c.progress for c in chunks) == path.stat().st_size
    middle = chunks[0].cursor
    assert middle["files"][str(path)][1] == 10
    resumed = [item async for chunk in source.chunks(middle) for item in chunk.items]
    assert [item.data.number for item in resumed] == list(range(12, 27))  # blank line 11 is not an item
    assert [json.loads(item.data.text)["context"]["user_id"] for item in resumed] == list(range(10, 25))
    finished = chunks[-1].cursor
    assert [item async for chunk in source.chunks(finished) for item in chunk.items] == []
