"""Open edX tracking-log events -> xAPI statements (pure).

One tracking-log line is one event.  Mapped events follow the shapes of Open
edX's own transformer (event-routing-backends): the same verbs and activity
types, objects named ``<platform>/course/<course id>``,
``<platform>/xblock/<usage key>`` and ``<platform>/certificates/<id>``, and the
course as the parent context activity.

The actor is an ``account`` on the platform: ``homePage`` is the platform URL
and ``name`` is the learner's stable id: ``context.user_id`` by default, the
external id from an actor map (e.g. the LMS's anonymous user ids) when one is
given, or the username when ``actor_id="username"``.  The email is never used.

The statement id is UUIDv5 over the event's canonical JSON (sorted keys) in
the Open edX namespace: the same event always yields the same id, wherever
and however often it is imported.  Events that cannot be mapped come back as
:class:`Skip` with their event type, so the summary counts them by type.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Mapping

import msgspec

from connectors.framework.ids import NAMESPACE_OPENEDX, statement_id
from connectors.framework.lines import Line
from connectors.framework.model import JSON, Mapped, MapResult, Skip, SourceItem
from connectors.openedx import vocabulary as V

_decoder = msgspec.json.Decoder()


@dataclass(frozen=True, slots=True)
class OpenEdxOptions:
    platform_url: str  # e.g. https://courses.example.org (no trailing slash needed)
    actor_id: str = "user_id"  # "user_id" | "username"
    actor_map: Mapping[str, str] | None = field(default=None)  # user id -> external id


class _Unmappable(Exception):
    def __init__(self, kind: str, detail: str = "") -> None:
        super().__init__(kind)
        self.kind = kind
        self.detail = detail


def map_tracking_line(item: SourceItem, options: OpenEdxOptions) -> MapResult:
    """Map one tracking-log line (a :class:`Line`) to a statement or a skip."""
    line: Line = item.data
    try:
        event = _decoder.decode(line.text)
    except msgspec.DecodeError as exc:
        return Skip("invalid JSON", str(exc))
    if not isinstance(event, dict):
        return Skip("not an event object")
    return map_event(event, options)


def map_event(event: JSON, options: OpenEdxOptions) -> MapResult:
    name = event_name(event)
    try:
        build = _BUILDERS.get(name)
        if build is None:
            if name.startswith("/"):
                build = _page_view
            else:
                return Skip(name or "(no event type)")
        ev = _Event(event, name, options)
        statement = build(ev)
    except _Unmappable as exc:
        return Skip(exc.kind, exc.detail)
    statement["id"] = statement_id(NAMESPACE_OPENEDX, msgspec.json.encode(event, order="sorted").decode())
    return Mapped([statement])


def event_name(event: JSON) -> str:
    name = event.get("name") or event.get("event_type") or ""
    return name if isinstance(name, str) else ""


class _Event:
    """Accessors over one event, in both the tracking-log shape (``event``,
    ``time``, ``event_type``) and the processed shape (``data``, ``timestamp``,
    ``name``)."""

    def __init__(self, raw: JSON, name: str, options: OpenEdxOptions) -> None:
        self.raw = raw
        self.name = name
        self.options = options
        self.platform = options.platform_url.rstrip("/")
        context = raw.get("context")
        self.context: JSON = context if isinstance(context, dict) else {}
        data = raw.get("event", raw.get("data"))
        if isinstance(data, str):  # browser events carry their payload as a JSON string
            try:
                data = json.loads(data) if data.strip() else {}
            except ValueError:
                raise _Unmappable(f"{name} (payload is not JSON)") from None
        self.data: JSON = data if isinstance(data, dict) else {}

    def require(self, value: Any, what: str) -> Any:
        if value is None or value == "":
            raise _Unmappable(f"{self.name} (missing {what})")
        return value

    @property
    def course_id(self) -> str:
        return self.require(self.context.get("course_id") or self.data.get("course_id"), "course_id")

    def number(self, value: Any, what: str) -> float | int:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _Unmappable(f"{self.name} (missing {what})")
        return value

    def actor(self) -> JSON:
        if self.options.actor_id == "username":
            name = self.raw.get("username") or self.context.get("username")
        else:
            name = self.context.get("user_id")
            if name in (None, ""):
                name = self.data.get("user_id")
            if name not in (None, "") and self.options.actor_map is not None:
                name = self.options.actor_map.get(str(name))
                if name is None:
                    raise _Unmappable("user not in the actor map")
        if name in (None, ""):
            raise _Unmappable("anonymous user")
        return {"objectType": "Agent", "account": {"homePage": self.platform, "name": str(name)}}

    def timestamp(self) -> str:
        raw = self.raw.get("time") or self.raw.get("timestamp")
        if not isinstance(raw, str):
            raise _Unmappable(f"{self.name} (missing time)")
        try:
            when = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            raise _Unmappable(f"{self.name} (invalid time)") from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        return when.astimezone(timezone.utc).isoformat()

    def course_activity(self) -> JSON:
        return {
            "objectType": "Activity",
            "id": f"{self.platform}/course/{self.course_id}",
            "definition": {"type": V.COURSE},
        }

    def xblock_iri(self, usage_key: str) -> str:
        return f"{self.platform}/xblock/{usage_key}"

    def statement(self, verb: str, display: str, obj: JSON, *, parent: bool = True, **extra: Any) -> JSON:
        statement: JSON = {
            "actor": self.actor(),
            "verb": {"id": verb, "display": {"en": display}},
            "object": obj,
            "timestamp": self.timestamp(),
        }
        if parent:
            statement["context"] = {"contextActivities": {"parent": [self.course_activity()]}}
        statement.update(extra)
        return statement


def _scaled(raw: float, maximum: float) -> float:
    if maximum <= 0:
        return 0.0
    return max(-1.0, min(1.0, raw / maximum))


# --- enrollment, completion, passing, certificates ---------------------------


def _course_verb(verb: str, display: str):
    def build(ev: _Event) -> JSON:
        obj = ev.course_activity()
        mode = ev.data.get("mode")
        if isinstance(mode, str) and mode:
            obj["definition"]["extensions"] = {V.MODE: mode}
        return ev.statement(verb, display, obj, parent=False)

    return build


def _certificate(ev: _Event) -> JSON:
    certificate_id = ev.require(ev.data.get("certificate_id"), "certificate_id")
    definition: JSON = {"type": V.CERTIFICATE, "name": {"en": f"Certificate {ev.course_id}"}}
    mode = ev.data.get("enrollment_mode")
    if isinstance(mode, str) and mode:
        definition["extensions"] = {V.MODE: mode}
    obj = {"objectType": "Activity", "id": f"{ev.platform}/certificates/{certificate_id}", "definition": definition}
    return ev.statement(V.EARNED, "earned", obj)


# --- problems and grades ------------------------------------------------------


def _problem_check(ev: _Event) -> JSON:
    source = ev.raw.get("event_source") or ev.context.get("event_source")
    if source != "server":
        raise _Unmappable("problem_check (browser; the server event carries the score)")
    data = ev.data
    module = ev.context.get("module") if isinstance(ev.context.get("module"), dict) else {}
    problem_id = ev.require(data.get("problem_id") or module.get("usage_key"), "problem_id")
    grade = ev.number(data.get("grade"), "grade")
    max_grade = ev.number(data.get("max_grade"), "max_grade")
    submission = data.get("submission") if isinstance(data.get("submission"), dict) else {}
    response_types = {s.get("response_type") for s in submission.values() if isinstance(s, dict)}
    interaction = V.INTERACTION_TYPES.get(response_types.pop(), "other") if len(response_types) == 1 else "other"
    definition: JSON = {"type": V.INTERACTION, "interactionType": interaction}
    attempts = data.get("attempts")
    if isinstance(attempts, int) and not isinstance(attempts, bool):
        definition["extensions"] = {V.ATTEMPT: attempts}
    if isinstance(module.get("display_name"), str) and module["display_name"]:
        definition["name"] = {"en": module["display_name"]}
    result: JSON = {
        "score": {"min": 0, "max": max_grade, "raw": grade, "scaled": _scaled(grade, max_grade)},
        "success": data.get("success") == "correct",
    }
    response = _response(data.get("answers"))
    if response is not None:
        result["response"] = response
    obj = {"objectType": "Activity", "id": ev.xblock_iri(problem_id), "definition": definition}
    return ev.statement(V.EVALUATED, "evaluated", obj, result=result)


def _response(answers: Any) -> str | None:
    """xAPI responses are strings; lists use the spec's ``[,]`` separator."""
    if not isinstance(answers, dict) or not answers:
        return None
    values = list(answers.values())
    if len(values) == 1:
        value = values[0]
        return "[,]".join(map(str, value)) if isinstance(value, list) else str(value)
    return json.dumps(answers, sort_keys=True)


def _subsection_grade(ev: _Event) -> JSON:
    block_id = ev.require(ev.data.get("block_id"), "block_id")
    earned = ev.data.get("weighted_total_earned") or 0
    possible = ev.data.get("weighted_total_possible") or 0
    earned = ev.number(earned, "weighted_total_earned")
    possible = ev.number(possible, "weighted_total_possible")
    result = {
        "score": {"min": 0, "max": possible, "raw": earned, "scaled": _scaled(earned, possible)},
        "success": earned >= possible,
    }
    obj = {"objectType": "Activity", "id": ev.xblock_iri(block_id), "definition": {"type": V.RESOURCE}}
    return ev.statement(V.EARNED, "earned", obj, result=result)


def _course_grade(ev: _Event) -> JSON:
    percent = ev.number(ev.data.get("percent_grade") or 0, "percent_grade")
    letter = ev.data.get("letter_grade") or "Fail"
    result = {
        "score": {"min": 0, "max": 1.0, "raw": percent, "scaled": max(-1.0, min(1.0, float(percent)))},
        "extensions": {V.GRADE_CLASSIFICATION: letter},
    }
    return ev.statement(V.EARNED, "earned", ev.course_activity(), parent=False, result=result)


# --- video ------------------------------------------------------------------------


def _video_iri(ev: _Event) -> str:
    video_id = ev.require(ev.data.get("id"), "video id")
    course_id = ev.course_id
    if course_id.startswith("course-v1:"):
        usage_key = f"block-v1:{course_id[len('course-v1:'):]}+type@video+block@{video_id}"
    elif course_id.startswith("ccx-v1:"):
        usage_key = f"ccx-block-v1:{course_id[len('ccx-v1:'):]}+type@video+block@{video_id}"
    else:  # old "org/course/run" course ids
        org, _, rest = course_id.partition("/")
        course = rest.partition("/")[0]
        usage_key = f"i4x://{org}/{course}/video/{video_id}"
    return ev.xblock_iri(usage_key)


def _seconds(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _video(verb: str, display: str):
    def build(ev: _Event) -> JSON:
        obj = {"objectType": "Activity", "id": _video_iri(ev), "definition": {"type": V.VIDEO}}
        statement = ev.statement(verb, display, obj)
        length = _seconds(ev.data.get("duration"))
        if length is not None:
            statement["context"]["extensions"] = {V.VIDEO_LENGTH: length}
        extensions: JSON = {}
        if verb == V.SEEKED:
            old, new = _seconds(ev.data.get("old_time")), _seconds(ev.data.get("new_time"))
            if old is not None:
                extensions[V.VIDEO_TIME_FROM] = old
            if new is not None:
                extensions[V.VIDEO_TIME_TO] = new
        elif verb == V.COMPLETED:
            if length is not None:
                extensions[V.VIDEO_TIME] = length
        elif verb != V.INITIALIZED:
            current = _seconds(ev.data.get("currentTime", ev.data.get("current_time")))
            if current is not None:
                extensions[V.VIDEO_TIME] = current
        result: JSON = {}
        if extensions:
            result["extensions"] = extensions
        if verb == V.COMPLETED:
            result["completion"] = True
            if length is not None:
                result["duration"] = _iso_duration(length)
        if result:
            statement["result"] = result
        return statement

    return build


def _iso_duration(seconds: float) -> str:
    return f"PT{round(seconds, 2):g}S"


# --- navigation ---------------------------------------------------------------------


def _page_view(ev: _Event) -> JSON:
    """Server events named by a URL path are page requests; only those without
    a POST body are page views (the rest are form posts and XBlock handlers)."""
    if ev.data.get("POST"):
        raise _Unmappable("server request (POST, not a page view)")
    obj = {
        "objectType": "Activity",
        "id": ev.platform + ev.name,
        "definition": {"type": V.PAGE},
    }
    has_course = bool(ev.context.get("course_id"))
    return ev.statement(V.EXPERIENCED, "experienced", obj, parent=has_course)


def _link_clicked(ev: _Event) -> JSON:
    target = ev.require(ev.data.get("target_url"), "target_url")
    obj = {"objectType": "Activity", "id": target, "definition": {"type": V.LINK}}
    return ev.statement(V.EXPERIENCED, "experienced", obj)


_BUILDERS = {
    "edx.course.enrollment.activated": _course_verb(V.REGISTERED, "registered"),
    "edx.course.enrollment.deactivated": _course_verb(V.UNREGISTERED, "unregistered"),
    "edx.course.completed": _course_verb(V.COMPLETED, "completed"),
    "edx.course.grade.passed.first_time": _course_verb(V.PASSED, "passed"),
    "edx.course.grade.now_passed": _course_verb(V.PASSED, "passed"),
    "edx.course.grade.now_failed": _course_verb(V.FAILED, "failed"),
    "edx.certificate.created": _certificate,
    "problem_check": _problem_check,
    "edx.grades.subsection.grade_calculated": _subsection_grade,
    "edx.grades.course.grade_calculated": _course_grade,
    "load_video": _video(V.INITIALIZED, "initialized"),
    "edx.video.loaded": _video(V.INITIALIZED, "initialized"),
    "play_video": _video(V.PLAYED, "played"),
    "edx.video.played": _video(V.PLAYED, "played"),
    "pause_video": _video(V.PAUSED, "paused"),
    "edx.video.paused": _video(V.PAUSED, "paused"),
    "seek_video": _video(V.SEEKED, "seeked"),
    "edx.video.position.changed": _video(V.SEEKED, "seeked"),
    "stop_video": _video(V.TERMINATED, "terminated"),
    "edx.video.stopped": _video(V.TERMINATED, "terminated"),
    "complete_video": _video(V.COMPLETED, "completed"),
    "edx.video.completed": _video(V.COMPLETED, "completed"),
    "edx.ui.lms.link_clicked": _link_clicked,
}

MAPPED_EVENT_TYPES = frozenset(_BUILDERS)
