"""Statement builders shared by the end-to-end tests."""

from __future__ import annotations

import uuid
from typing import Any

VERB_COMPLETED = "http://adlnet.gov/expapi/verbs/completed"
VERB_VOIDED = "http://adlnet.gov/expapi/verbs/voided"


def statement(
    *,
    statement_id: str | None = None,
    learner: str = "learner@example.org",
    verb: str = VERB_COMPLETED,
    activity: str = "http://example.org/courses/digital-literacy/unit-1",
    registration: str | None = None,
    parent: str | None = None,
    score: float | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "actor": {"objectType": "Agent", "name": "A Learner", "mbox": f"mailto:{learner}"},
        "verb": {"id": verb, "display": {"en-US": verb.rsplit("/", 1)[-1]}},
        "object": {
            "objectType": "Activity",
            "id": activity,
            "definition": {"name": {"en-US": "Unit 1", "vi-VN": "Bài 1"}},
        },
    }
    if statement_id is not None:
        body["id"] = statement_id
    context: dict[str, Any] = {}
    if registration is not None:
        context["registration"] = registration
    if parent is not None:
        context["contextActivities"] = {"parent": [{"id": parent}]}
    if context:
        body["context"] = context
    if score is not None:
        body["result"] = {"score": {"scaled": score}, "success": score >= 0.5}
    return body


def voiding(target: str, *, statement_id: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "actor": {"objectType": "Agent", "mbox": "mailto:admin@example.org"},
        "verb": {"id": VERB_VOIDED, "display": {"en-US": "voided"}},
        "object": {"objectType": "StatementRef", "id": target},
    }
    if statement_id is not None:
        body["id"] = statement_id
    return body


def new_id() -> str:
    return str(uuid.uuid4())
