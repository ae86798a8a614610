"""The statements the group-commit writer's tests write, prepared as ingest
prepares them."""

from __future__ import annotations

import uuid
from typing import Any

from lrs.ingest.model import PreparedStatement
from lrs.ingest.prepare import prepare_statements
from tests.statements import new_id
from tests.statements import statement as shared_statement


AUTHORITY = {"objectType": "Agent", "mbox": "mailto:authority@example.com"}
VOIDED = "http://adlnet.gov/expapi/verbs/voided"


def statement(activity: str = "http://example.com/a", **extra: Any) -> dict[str, Any]:
    fields = {"verb": "http://example.com/verbs/did", **extra}
    return shared_statement(statement_id=new_id(), mbox="mailto:learner@example.com", activity=activity, **fields)


def voiding(target: uuid.UUID | str) -> dict[str, Any]:
    return statement(verb={"id": VOIDED}, object={"objectType": "StatementRef", "id": str(target)})


def prepared(*bodies: dict[str, Any]) -> list[PreparedStatement]:
    return prepare_statements(list(bodies), version="1.0.3", authority=AUTHORITY, new_id=uuid.uuid4)
