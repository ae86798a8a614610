"""The smallest valid xAPI statement, shared by the tests that build one.

``statement()`` gives ``{"id"?, "actor": {"mbox"}, "verb": {"id"},
"object": {"id"}}`` in that key order, then ``extra`` added or replacing
keys.  A test file names its own defaults once, e.g.
``functools.partial(statement, mbox="mailto:ana@example.com")``.  Richer
builders live beside the tests that need them (tests/e2e/statements.py for
the end-to-end tests, tests/conformance/support.py for the spec's cases).
"""

from __future__ import annotations

import uuid
from typing import Any

COMPLETED = "http://adlnet.gov/expapi/verbs/completed"
ATTEMPTED = "http://adlnet.gov/expapi/verbs/attempted"
EXPERIENCED = "http://adlnet.gov/expapi/verbs/experienced"
VOIDED = "http://adlnet.gov/expapi/verbs/voided"


def new_id() -> str:
    return str(uuid.uuid4())


def statement(
    *,
    statement_id: str | None = None,
    mbox: str = "mailto:learner@example.org",
    verb: str | dict[str, Any] = COMPLETED,
    activity: str = "http://example.org/activity",
    **extra: Any,
) -> dict[str, Any]:
    """``verb`` is the verb's IRI, or the whole verb object."""
    body: dict[str, Any] = {} if statement_id is None else {"id": statement_id}
    body["actor"] = {"mbox": mbox}
    body["verb"] = {"id": verb} if isinstance(verb, str) else verb
    body["object"] = {"id": activity}
    body.update(extra)
    return body
