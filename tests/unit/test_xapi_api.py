"""Version negotiation, the agent query parameter, errors and the JSON Schema files."""

from __future__ import annotations

import json

import pytest

from lrs.xapi import ConflictError, NotFoundError, XapiError, negotiate_version, parse_agent_param
from lrs.xapi.jsonschema import drifted, render


@pytest.mark.parametrize(
    ("header", "version"),
    [("1.0", "1.0.3"), ("1.0.0", "1.0.3"), ("1.0.1", "1.0.3"), ("1.0.3", "1.0.3"), (" 1.0.3 ", "1.0.3"), ("2.0", "2.0.0"), ("2.0.0", "2.0.0")],
)
def test_supported_version_headers(header: str, version: str) -> None:
    assert negotiate_version(header) == version


@pytest.mark.parametrize("header", [None, "", "0.95", "0.9", "1.1.0", "1", "3.0.0", "1.0.3.1", "v1.0.3", "1.0.x"])
def test_unsupported_version_headers_are_400(header: str | None) -> None:
    with pytest.raises(XapiError) as err:
        negotiate_version(header)
    assert err.value.status == 400
    assert "X-Experience-API-Version" in str(err.value)


@pytest.mark.parametrize(
    "agent",
    [
        {"mbox": "mailto:a@example.com"},
        {"objectType": "Agent", "account": {"homePage": "http://example.com", "name": "42"}},
        {"objectType": "Group", "openid": "http://openid.example.com/g"},
        {"objectType": "Group", "member": [{"mbox_sha1sum": "ebd31e95054c018b10727ccffd2ef2ec3a016ee9"}]},
    ],
)
def test_agent_param_accepts_agents_and_groups(agent: dict) -> None:
    assert parse_agent_param(json.dumps(agent)) == agent


@pytest.mark.parametrize(
    ("text", "path", "fragment"),
    [
        ("mailto:a@example.com", "agent", "not JSON"),
        ("[]", "agent", "Expected `object`"),
        ('{"mbox": "a@example.com"}', "agent.mbox", "mailto"),
        ('{"name": "x"}', "agent", "exactly one"),
        ('{"mbox": "mailto:a@example.com", "Name": "x"}', "agent", "unknown field `Name`"),
        ('{"objectType": "Group"}', "agent.member", "anonymous Group"),
    ],
)
def test_agent_param_errors_name_the_parameter(text: str, path: str, fragment: str) -> None:
    with pytest.raises(XapiError) as err:
        parse_agent_param(text)
    assert err.value.status == 400
    assert err.value.path == path
    assert "`agent`" in err.value.message and fragment in err.value.message


def test_agent_param_uses_the_given_parameter_name() -> None:
    with pytest.raises(XapiError) as err:
        parse_agent_param('{"mbox": "x"}', path="agentA")
    assert err.value.path == "agentA.mbox" and "`agentA`" in err.value.message


def test_error_forms() -> None:
    err = XapiError(400, "bad thing", "$[2].actor.mbox")
    assert (err.status, err.message, err.path) == (400, "bad thing", "$[2].actor.mbox")
    assert str(err) == "bad thing (at $[2].actor.mbox)"
    assert str(XapiError("no path")) == "no path" and XapiError("no path").status == 400
    assert XapiError("m", path="$.id").path == "$.id"
    assert ConflictError("differs").status == 409 and isinstance(ConflictError("x"), XapiError)
    assert NotFoundError("gone").status == 404
    assert ConflictError(409, "x", "$").path == "$"


def test_json_schema_files_match_the_generator() -> None:
    assert drifted() == [], "run: python -m lrs.xapi.jsonschema"


def test_json_schemas_describe_the_strict_shape() -> None:
    schema = json.loads(render()["statement.json"])
    statement = schema["$defs"]["Statement"]
    assert statement["additionalProperties"] is False
    assert set(statement["required"]) == {"actor", "verb", "object"}
    assert "pattern" in schema["$defs"]["Verb"]["properties"]["id"]
