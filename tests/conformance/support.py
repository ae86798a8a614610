"""Helpers for the conformance cases: requests, a statement builder, the "nothing stored" check.

Each case names the requirement it checks by section and bullet of the xAPI
1.0.3 specification (adlnet/xAPI-Spec: xAPI-Data.md "Data", xAPI-Communication.md
"Communication", xAPI-About.md "About"), quoting the requirement's text.
"""

from __future__ import annotations

import copy
import json
import uuid
from typing import Any

from aiohttp.test_utils import TestClient

from tests.e2e.conftest import basic_auth, xapi_headers

STATEMENTS = "/xapi/statements"
ACTIVITY = "http://example.org/activities/conformance"
VERB = "http://adlnet.gov/expapi/verbs/attempted"


def new_id() -> str:
    return str(uuid.uuid4())


def stmt(**fields: Any) -> dict[str, Any]:
    """The spec's simplest Statement (Data 2.4.s2), with ``fields`` added or replaced.

    A value of ``None`` removes the property.
    """
    body: dict[str, Any] = {
        "actor": {"objectType": "Agent", "name": "Conformance Learner", "mbox": "mailto:learner@example.org"},
        "verb": {"id": VERB, "display": {"en-US": "attempted"}},
        "object": {"objectType": "Activity", "id": ACTIVITY},
    }
    for key, value in fields.items():
        if value is None:
            body.pop(key, None)
        else:
            body[key] = value
    return body


def with_path(body: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy of ``body`` with the dotted ``path`` set to ``value`` (``...`` deletes it)."""
    out = copy.deepcopy(body)
    node = out
    parts = path.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    if value is ...:
        node.pop(parts[-1], None)
    else:
        node[parts[-1]] = value
    return out


def headers(version: str = "1.0.3", **extra: str) -> dict[str, str]:
    return {**xapi_headers(version), **extra}


async def post(client: TestClient, body: Any, *, version: str = "1.0.3", raw: bytes | None = None,
               extra: dict[str, str] | None = None):
    data = raw if raw is not None else json.dumps(body).encode()
    return await client.post(
        STATEMENTS, data=data, headers={**headers(version), "Content-Type": "application/json", **(extra or {})}
    )


async def put(client: TestClient, statement_id: str, body: Any, *, version: str = "1.0.3"):
    return await client.put(
        STATEMENTS,
        params={"statementId": statement_id},
        data=json.dumps(body).encode(),
        headers={**headers(version), "Content-Type": "application/json"},
    )


async def get(client: TestClient, params: dict[str, str] | None = None, *, version: str = "1.0.3",
              extra: dict[str, str] | None = None):
    return await client.get(STATEMENTS, params=params or {}, headers={**headers(version), **(extra or {})})


async def store(client: TestClient, *statements: dict[str, Any], version: str = "1.0.3") -> list[str]:
    """POST ``statements`` (must succeed) and return their ids."""
    response = await post(client, list(statements), version=version)
    assert response.status == 200, await response.text()
    return await response.json()


async def fetch(client: TestClient, statement_id: str, *, voided: bool = False, **params: str) -> dict[str, Any]:
    name = "voidedStatementId" if voided else "statementId"
    response = await get(client, {name: statement_id, **params})
    assert response.status == 200, await response.text()
    return await response.json()


async def all_statements(client: TestClient, **params: str) -> list[dict[str, Any]]:
    """Every Statement a query returns, following ``more`` links."""
    response = await get(client, params)
    assert response.status == 200, await response.text()
    page = await response.json()
    out = list(page["statements"])
    while page.get("more"):
        response = await client.get(page["more"], headers=headers())
        assert response.status == 200, await response.text()
        page = await response.json()
        out.extend(page["statements"])
    return out


async def error_of(response) -> str:
    """The error message of a 4xx answer (which must be JSON naming the problem)."""
    assert 400 <= response.status < 500, (response.status, await response.text())
    assert response.content_type == "application/json"
    payload = await response.json()
    assert isinstance(payload.get("error"), str) and payload["error"], payload
    return payload["error"] + " " + (payload.get("path") or "")


async def assert_rejected(client: TestClient, body: Any, *, status: int = 400, fragment: str | None = None,
                          version: str = "1.0.3", raw: bytes | None = None) -> str:
    """POST ``body``; it must get ``status`` with a message, and nothing may be stored."""
    response = await post(client, body, version=version, raw=raw)
    assert response.status == status, (status, response.status, await response.text())
    message = await error_of(response)
    if fragment is not None:
        assert fragment.lower() in message.lower(), message
    assert await all_statements(client) == []
    return message


async def assert_accepted(client: TestClient, body: Any, *, version: str = "1.0.3") -> list[str]:
    response = await post(client, body, version=version)
    assert response.status == 200, await response.text()
    ids = await response.json()
    assert isinstance(ids, list) and ids
    return ids


__all__ = [
    "ACTIVITY",
    "STATEMENTS",
    "VERB",
    "all_statements",
    "assert_accepted",
    "assert_rejected",
    "basic_auth",
    "error_of",
    "fetch",
    "get",
    "headers",
    "new_id",
    "post",
    "put",
    "store",
    "stmt",
    "with_path",
]
