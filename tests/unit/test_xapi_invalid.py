"""Each validation rule: a statement breaking it is refused with 400 and the right JSON path."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from lrs.xapi import XapiError, parse_statement, parse_statements
from tests.unit.test_xapi_valid import (
    FULL,
    INTERACTIONS,
    MINIMAL,
    SUBSTATEMENT,
    VOIDING,
    interaction_statement,
)

DELETE = object()


def changed(base: dict, path: str, value: Any) -> dict:
    """A deep copy of ``base`` with the value at dotted ``path`` (``a.b[0].c``) replaced."""
    result = copy.deepcopy(base)
    parts: list[Any] = []
    for part in path.split("."):
        name, _, rest = part.partition("[")
        if name:
            parts.append(name)
        for index in filter(None, rest.replace("]", "").split("[")) if rest else []:
            parts.append(int(index))
    target: Any = result
    for part in parts[:-1]:
        target = target[part]
    if value is DELETE:
        del target[parts[-1]]
    else:
        target[parts[-1]] = value
    return result


CHOICE = interaction_statement(INTERACTIONS["choice"])
DEF = "object.definition"

# (case id, statement, expected JSON path, fragment of the message)
CASES: list[tuple[str, dict, str, str]] = [
    # structure, unknown keys, case of keys, nulls
    ("missing-actor", changed(MINIMAL, "actor", DELETE), "$", "missing required field `actor`"),
    ("missing-verb-id", changed(MINIMAL, "verb.id", DELETE), "$.verb", "missing required field `id`"),
    ("unknown-top-level-key", changed(MINIMAL, "foo", 1), "$", "unknown field `foo`"),
    ("wrong-case-key", {**changed(MINIMAL, "verb", DELETE), "Verb": MINIMAL["verb"]}, "$", "`Verb`"),
    ("wrong-case-nested-key", changed(MINIMAL, "actor.Mbox", "mailto:x@example.com"), "$.actor", "unknown field `Mbox`"),
    ("null-name", changed(MINIMAL, "actor.name", None), "$.actor.name", "got `null`"),
    ("null-result", changed(MINIMAL, "result", None), "$.result", "got `null`"),
    ("null-in-language-map", changed(MINIMAL, "verb.display", {"en": None}), "$.verb.display", "Invalid value: Expected `str`, got `null`"),
    ("string-for-number", changed(MINIMAL, "result", {"score": {"raw": "5"}}), "$.result.score.raw", "got `str`"),
    ("string-for-boolean", changed(MINIMAL, "result", {"success": "true"}), "$.result.success", "got `str`"),
    ("number-for-string", changed(MINIMAL, "result", {"response": 5}), "$.result.response", "got `int`"),
    # enumerations, exact case
    ("objecttype-lowercase", changed(MINIMAL, "object.objectType", "activity"), "$.object.objectType", "Invalid enum value 'activity'"),
    ("actor-objecttype-unknown", changed(MINIMAL, "actor.objectType", "Person"), "$.actor.objectType", "Invalid enum value"),
    # IRIs
    ("verb-id-not-iri", changed(MINIMAL, "verb.id", "completed"), "$.verb.id", "IRI"),
    ("verb-id-empty", changed(MINIMAL, "verb.id", ""), "$.verb.id", "IRI"),
    ("activity-id-relative", changed(MINIMAL, "object.id", "/activities/1"), "$.object.id", "IRI"),
    ("activity-id-with-space", changed(MINIMAL, "object.id", "http://example.com/a b"), "$.object.id", "IRI"),
    ("activity-type-not-iri", changed(MINIMAL, DEF, {"type": "course"}), "$.object.definition.type", "IRI"),
    ("moreinfo-not-iri", changed(MINIMAL, DEF, {"moreInfo": "www.example.com"}), "$.object.definition.moreInfo", "IRI"),
    ("extension-key-not-iri", changed(MINIMAL, "result", {"extensions": {"score": 1}}), "$.result.extensions", "IRI"),
    ("openid-not-iri", changed(MINIMAL, "actor", {"openid": "toby"}), "$.actor.openid", "IRI"),
    ("homepage-not-iri", changed(MINIMAL, "actor", {"account": {"homePage": "example.com", "name": "x"}}), "$.actor.account.homePage", "IRI"),
    ("account-missing-name", changed(MINIMAL, "actor", {"account": {"homePage": "http://example.com"}}), "$.actor.account", "`name`"),
    # inverse functional identifiers
    ("mbox-without-mailto", changed(MINIMAL, "actor.mbox", "xapi@adlnet.gov"), "$.actor.mbox", "mailto"),
    ("mbox-wrong-scheme-case", changed(MINIMAL, "actor.mbox", "MAILTO:xapi@adlnet.gov"), "$.actor.mbox", "mailto"),
    ("mbox-sha1-short", changed(MINIMAL, "actor", {"mbox_sha1sum": "abc"}), "$.actor.mbox_sha1sum", "SHA-1"),
    ("mbox-sha1-not-hex", changed(MINIMAL, "actor", {"mbox_sha1sum": "g" * 40}), "$.actor.mbox_sha1sum", "SHA-1"),
    ("agent-no-ifi", changed(MINIMAL, "actor", {"name": "nobody"}), "$.actor", "exactly one inverse functional identifier"),
    ("agent-two-ifis", changed(MINIMAL, "actor.openid", "http://openid.example.com/x"), "$.actor", "found 2"),
    ("agent-with-member", changed(MINIMAL, "actor.member", [{"mbox": "mailto:a@example.com"}]), "$.actor.member", "only allowed on a Group"),
    ("identified-group-two-ifis", changed(FULL, "actor.openid", "http://openid.example.com/g"), "$.actor", "found 2"),
    ("anonymous-group-without-members", changed(MINIMAL, "actor", {"objectType": "Group", "name": "g"}), "$.actor.member", "anonymous Group"),
    ("anonymous-group-empty-members", changed(MINIMAL, "actor", {"objectType": "Group", "member": []}), "$.actor.member", "anonymous Group"),
    ("group-member-is-group", changed(FULL, "actor.member[1]", {"objectType": "Group", "mbox": "mailto:g@example.com"}), "$.actor.member[1].objectType", "Invalid enum value 'Group'"),
    ("group-member-bad-mbox", changed(FULL, "actor.member[2]", {"mbox": "nope"}), "$.actor.member[2].mbox", "mailto"),
    ("group-member-without-ifi", changed(FULL, "actor.member[0]", {"name": "x"}), "$.actor.member[0]", "exactly one"),
    ("team-not-group", changed(FULL, "context.team", {"mbox": "mailto:t@example.com"}), "$.context.team", "`objectType`"),
    ("instructor-no-ifi", changed(FULL, "context.instructor", {"name": "x"}), "$.context.instructor", "exactly one"),
    ("agent-object-without-objecttype", changed(MINIMAL, "object", {"mbox": "mailto:x@example.com"}), "$.object.mbox", "not allowed on an object of objectType 'Activity'"),
    ("agent-object-two-ifis", changed(MINIMAL, "object", {"objectType": "Agent", "mbox": "mailto:x@example.com", "openid": "http://o.example.com"}), "$.object", "found 2"),
    # language maps
    ("language-tag-underscore", changed(MINIMAL, "verb.display", {"en_US": "created"}), "$.verb.display", "language tag"),
    ("language-tag-empty", changed(MINIMAL, "verb.display", {"": "created"}), "$.verb.display", "language tag"),
    ("language-tag-too-long", changed(MINIMAL, DEF, {"name": {"abcdefghi": "x"}}), "$.object.definition.name", "language tag"),
    ("language-map-not-object", changed(MINIMAL, "verb.display", "created"), "$.verb.display", "Expected `object`"),
    ("language-map-number-value", changed(MINIMAL, DEF, {"description": {"en": 1}}), "$.object.definition.description", "got `int`"),
    ("context-language-bad", changed(FULL, "context.language", "english language"), "$.context.language", "language tag"),
    # UUIDs
    ("statement-id-not-uuid", changed(MINIMAL, "id", "12345"), "$.id", "UUID"),
    ("statement-id-braced", changed(MINIMAL, "id", "{6690e6c9-3ef0-4ed3-8b37-7f3964730bee}"), "$.id", "UUID"),
    ("statement-id-no-hyphens", changed(MINIMAL, "id", "6690e6c93ef04ed38b377f3964730bee"), "$.id", "UUID"),
    ("registration-not-uuid", changed(FULL, "context.registration", "reg-1"), "$.context.registration", "UUID"),
    ("statementref-id-not-uuid", changed(VOIDING, "object.id", "http://example.com/s/1"), "$.object.id", "UUID"),
    ("context-statement-not-ref", changed(FULL, "context.statement", {"id": "6690e6c9-3ef0-4ed3-8b37-7f3964730bee"}), "$.context.statement", "`objectType`"),
    ("statementref-missing-id", changed(VOIDING, "object.id", DELETE), "$.object", "requires `id`"),
    ("statementref-extra-field", changed(VOIDING, "object.definition", {}), "$.object.definition", "not allowed on an object of objectType 'StatementRef'"),
    # timestamps
    ("timestamp-month-13", changed(MINIMAL, "timestamp", "2024-13-01T00:00:00Z"), "$.timestamp", "month 13"),
    ("timestamp-feb-30", changed(MINIMAL, "timestamp", "2023-02-29T00:00:00Z"), "$.timestamp", "day 29"),
    ("timestamp-date-only", changed(MINIMAL, "timestamp", "2024-01-01"), "$.timestamp", "ISO 8601 timestamp"),
    ("timestamp-space-separator", changed(MINIMAL, "timestamp", "2024-01-01 10:00:00Z"), "$.timestamp", "ISO 8601 timestamp"),
    ("timestamp-hour-24", changed(MINIMAL, "timestamp", "2024-01-01T24:00:00Z"), "$.timestamp", "out of range"),
    ("timestamp-negative-zero-offset", changed(MINIMAL, "timestamp", "2024-01-01T10:00:00-00:00"), "$.timestamp", "-00:00"),
    ("timestamp-number", changed(MINIMAL, "timestamp", 1700000000), "$.timestamp", "got `int`"),
    ("stored-invalid", changed(MINIMAL, "stored", "yesterday"), "$.stored", "ISO 8601 timestamp"),
    ("stored-bad-day", changed(MINIMAL, "stored", "2024-04-31T00:00:00Z"), "$.stored", "day 31"),
    # durations
    ("duration-no-p", changed(MINIMAL, "result", {"duration": "T1H"}), "$.result.duration", "duration"),
    ("duration-empty", changed(MINIMAL, "result", {"duration": "P"}), "$.result.duration", "duration"),
    ("duration-weeks-and-days", changed(MINIMAL, "result", {"duration": "P4W1D"}), "$.result.duration", "duration"),
    ("duration-dangling-t", changed(MINIMAL, "result", {"duration": "P1DT"}), "$.result.duration", "duration"),
    ("duration-alternative-format", changed(MINIMAL, "result", {"duration": "P0003-01-29T04:35:59"}), "$.result.duration", "duration"),
    # score
    ("scaled-above-1", changed(MINIMAL, "result", {"score": {"scaled": 1.01}}), "$.result.score.scaled", "between -1 and 1"),
    ("scaled-below-minus-1", changed(MINIMAL, "result", {"score": {"scaled": -2}}), "$.result.score.scaled", "between -1 and 1"),
    ("min-equals-max", changed(MINIMAL, "result", {"score": {"min": 5, "max": 5}}), "$.result.score.min", "less than `max`"),
    ("raw-below-min", changed(MINIMAL, "result", {"score": {"raw": -1, "min": 0}}), "$.result.score.raw", "less than `min`"),
    ("raw-above-max", changed(MINIMAL, "result", {"score": {"raw": 11, "min": 0, "max": 10}}), "$.result.score.raw", "greater than `max`"),
    ("score-boolean", changed(MINIMAL, "result", {"score": {"raw": True}}), "$.result.score.raw", "got `bool`"),
    # context
    ("context-activities-unknown-key", changed(FULL, "context.contextActivities.sibling", []), "$.context.contextActivities", "unknown field `sibling`"),
    ("context-activity-bad-id", changed(FULL, "context.contextActivities.parent[0].id", "not an iri"), "$.context.contextActivities.parent[0].id", "IRI"),
    ("context-activity-string", changed(FULL, "context.contextActivities.other", "http://example.com/a"), "$.context.contextActivities.other", "Expected `object | array`"),
    ("revision-with-agent-object", {**changed(FULL, "object", {"objectType": "Agent", "mbox": "mailto:o@example.com"})}, "$.context.revision", "only allowed when the object is an Activity"),
    ("platform-with-statementref", changed(changed(FULL, "object", VOIDING["object"]), "context.revision", DELETE), "$.context.platform", "only allowed when the object is an Activity"),
    ("context-agents-in-1-0-3", changed(MINIMAL, "context", {"contextAgents": []}), "$.context", "unknown field `contextAgents`"),
    ("context-groups-in-1-0-3", changed(MINIMAL, "context", {"contextGroups": []}), "$.context", "unknown field `contextGroups`"),
    # SubStatements
    ("substatement-with-id", changed(SUBSTATEMENT, "object.id", "6690e6c9-3ef0-4ed3-8b37-7f3964730bee"), "$.object.id", "not allowed on an object of objectType 'SubStatement'"),
    ("substatement-with-stored", changed(SUBSTATEMENT, "object.stored", "2024-01-01T00:00:00Z"), "$.object", "unknown field `stored`"),
    ("substatement-with-version", changed(SUBSTATEMENT, "object.version", "1.0.0"), "$.object", "unknown field `version`"),
    ("substatement-with-authority", changed(SUBSTATEMENT, "object.authority", {"mbox": "mailto:a@example.com"}), "$.object", "unknown field `authority`"),
    ("substatement-nested", changed(SUBSTATEMENT, "object.object", SUBSTATEMENT["object"]), "$.object.object.objectType", "cannot contain a SubStatement"),
    ("substatement-missing-verb", changed(SUBSTATEMENT, "object.verb", DELETE), "$.object", "requires `verb`"),
    ("substatement-bad-inner-actor", changed(SUBSTATEMENT, "object.actor.mbox", "x"), "$.object.actor.mbox", "mailto"),
    ("substatement-bad-inner-timestamp", changed(SUBSTATEMENT, "object.timestamp", "2024-02-30T00:00:00Z"), "$.object.timestamp", "day 30"),
    ("substatement-platform-with-agent-object", changed(SUBSTATEMENT, "object.object", {"objectType": "Agent", "mbox": "mailto:o@example.com"}), "$.object.context.platform", "only allowed"),
    ("substatement-context-agents-in-1-0-3", changed(SUBSTATEMENT, "object.context.contextAgents", []), "$.object.context", "unknown field `contextAgents`"),
    ("activity-with-substatement-fields", changed(MINIMAL, "object.verb", MINIMAL["verb"]), "$.object.verb", "not allowed on an object of objectType 'Activity'"),
    # voiding
    ("voiding-activity-object", changed(VOIDING, "object", {"id": "http://example.com/a"}), "$.object", "must be a StatementRef"),
    ("voiding-substatement-object", changed(VOIDING, "object", SUBSTATEMENT["object"]), "$.object", "must be a StatementRef"),
    # interaction activities
    ("interaction-type-unknown", changed(CHOICE, f"{DEF}.interactionType", "multiple-choice"), "$.object.definition.interactionType", "Invalid enum value"),
    ("interaction-type-wrong-case", changed(CHOICE, f"{DEF}.interactionType", "Choice"), "$.object.definition.interactionType", "Invalid enum value"),
    ("correct-responses-not-list", changed(CHOICE, f"{DEF}.correctResponsesPattern", "golf"), "$.object.definition.correctResponsesPattern", "Expected `array`"),
    ("correct-responses-number", changed(CHOICE, f"{DEF}.correctResponsesPattern", [1]), "$.object.definition.correctResponsesPattern[0]", "got `int`"),
    ("correct-responses-without-type", changed(CHOICE, f"{DEF}.interactionType", DELETE), "$.object.definition.correctResponsesPattern", "only allowed with an `interactionType`"),
    ("choices-for-likert", changed(interaction_statement(INTERACTIONS["likert"]), f"{DEF}.choices", []), "$.object.definition.choices", "not allowed for interactionType 'likert'"),
    ("steps-for-true-false", changed(interaction_statement(INTERACTIONS["true-false"]), f"{DEF}.steps", []), "$.object.definition.steps", "not allowed for interactionType 'true-false'"),
    ("component-duplicate-id", changed(CHOICE, f"{DEF}.choices[2].id", "golf"), "$.object.definition.choices[2].id", "not unique"),
    ("component-missing-id", changed(CHOICE, f"{DEF}.choices[1].id", DELETE), "$.object.definition.choices[1]", "missing required field `id`"),
    ("component-bad-description", changed(CHOICE, f"{DEF}.choices[1].description", {"en US": "x"}), "$.object.definition.choices[1].description", "language tag"),
    ("component-unknown-field", changed(CHOICE, f"{DEF}.choices[0].name", {"en": "x"}), "$.object.definition.choices[0]", "unknown field `name`"),
    # attachments
    ("attachment-usage-not-iri", changed(FULL, "attachments[0].usageType", "signature"), "$.attachments[0].usageType", "IRI"),
    ("attachment-missing-display", changed(FULL, "attachments[1].display", DELETE), "$.attachments[1]", "missing required field `display`"),
    ("attachment-bad-display", changed(FULL, "attachments[1].display", {"english": 1}), "$.attachments[1].display", ""),
    ("attachment-negative-length", changed(FULL, "attachments[0].length", -1), "$.attachments[0].length", ">= 0"),
    ("attachment-float-length", changed(FULL, "attachments[0].length", 1.5), "$.attachments[0].length", "Expected `int`"),
    ("attachment-bad-content-type", changed(FULL, "attachments[0].contentType", "pdf"), "$.attachments[0].contentType", "media type"),
    ("attachment-sha2-not-hex", changed(FULL, "attachments[0].sha2", "not-a-hash"), "$.attachments[0].sha2", "SHA-2"),
    ("attachment-file-url-not-iri", changed(FULL, "attachments[1].fileUrl", "certificate.pdf"), "$.attachments[1].fileUrl", "IRI"),
    ("attachments-not-array", changed(FULL, "attachments", FULL["attachments"][0]), "$.attachments", "Expected `array`"),
    # version, authority
    ("version-2-0-under-1-0-3", changed(MINIMAL, "version", "2.0.0"), "$.version", "must start with '1.0.'"),
    ("version-1-1", changed(MINIMAL, "version", "1.1.0"), "$.version", "must start with"),
    ("version-not-semver", changed(MINIMAL, "version", "1"), "$.version", "semantic version"),
    ("authority-group-of-three", changed(FULL, "authority", {"objectType": "Group", "member": [{"mbox": f"mailto:{n}@example.com"} for n in "abc"]}), "$.authority.member", "exactly two Agents"),
    ("authority-without-ifi", changed(FULL, "authority", {"name": "someone"}), "$.authority", "exactly one"),
]


@pytest.mark.parametrize(("statement", "path", "fragment"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_invalid_statement_is_refused_with_its_path(statement: dict, path: str, fragment: str) -> None:
    with pytest.raises(XapiError) as single:
        parse_statement(json.dumps(statement).encode(), "1.0.3")
    assert single.value.status == 400
    assert single.value.path == path
    assert fragment in single.value.message

    batch = [MINIMAL, FULL, statement]
    with pytest.raises(XapiError) as in_batch:
        parse_statements(json.dumps(batch).encode(), "1.0.3")
    assert in_batch.value.status == 400
    assert in_batch.value.path == "$[2]" + path[1:]
    assert fragment in in_batch.value.message
    assert in_batch.value.path in str(in_batch.value)


V2_CASES: list[tuple[str, dict, str, str]] = [
    ("version-3", changed(MINIMAL, "version", "3.0.0"), "$.version", "must start with '1.0.' or '2.0.'"),
    ("context-agent-wrong-objecttype", changed(MINIMAL, "context", {"contextAgents": [{"objectType": "Agent", "agent": {"mbox": "mailto:a@example.com"}}]}), "$.context.contextAgents[0].objectType", "Invalid enum value"),
    ("context-agent-missing-agent", changed(MINIMAL, "context", {"contextAgents": [{"objectType": "contextAgent"}]}), "$.context.contextAgents[0]", "missing required field `agent`"),
    ("context-agent-empty-relevant-types", changed(MINIMAL, "context", {"contextAgents": [{"objectType": "contextAgent", "agent": {"mbox": "mailto:a@example.com"}, "relevantTypes": []}]}), "$.context.contextAgents[0].relevantTypes", "length >= 1"),
    ("context-agent-relevant-type-not-iri", changed(MINIMAL, "context", {"contextAgents": [{"objectType": "contextAgent", "agent": {"mbox": "mailto:a@example.com"}, "relevantTypes": ["coach"]}]}), "$.context.contextAgents[0].relevantTypes[0]", "IRI"),
    ("context-agent-is-group", changed(MINIMAL, "context", {"contextAgents": [{"objectType": "contextAgent", "agent": {"objectType": "Group", "member": []}}]}), "$.context.contextAgents[0].agent.objectType", "Invalid enum value"),
    ("context-group-not-group", changed(MINIMAL, "context", {"contextGroups": [{"objectType": "contextGroup", "group": {"mbox": "mailto:a@example.com"}}]}), "$.context.contextGroups[0].group", "`objectType`"),
]


@pytest.mark.parametrize(("statement", "path", "fragment"), [c[1:] for c in V2_CASES], ids=[c[0] for c in V2_CASES])
def test_invalid_2_0_statement_is_refused_with_its_path(statement: dict, path: str, fragment: str) -> None:
    with pytest.raises(XapiError) as err:
        parse_statements(json.dumps([MINIMAL, statement]).encode(), "2.0.0")
    assert err.value.status == 400
    assert err.value.path == "$[1]" + path[1:]
    assert fragment in err.value.message


@pytest.mark.parametrize(
    ("body", "path", "fragment"),
    [
        (b"[]", "$", "no statements"),
        (b"", "$", "not valid JSON"),
        (b"{", "$", "not valid JSON"),
        (b'"statement"', "$", "Expected `object | array`"),
        (b"null", "$", "got `null`"),
        (b"[1]", "$[0]", "Expected `object`"),
        (b'[{"actor": {"mbox": "mailto:a@example.com"}, "verb": {"id": "http://e.com/v"}, "object": {"id": "http://e.com/a"}}, null]', "$[1]", "got `null`"),
        (b"[[]]", "$[0]", "Expected `object`"),
    ],
)
def test_malformed_bodies_are_refused(body: bytes, path: str, fragment: str) -> None:
    with pytest.raises(XapiError) as err:
        parse_statements(body, "1.0.3")
    assert err.value.status == 400
    assert err.value.path == path
    assert fragment in err.value.message


def test_put_body_must_be_one_object() -> None:
    with pytest.raises(XapiError) as err:
        parse_statement(json.dumps([MINIMAL]).encode(), "1.0.3")
    assert err.value.status == 400 and err.value.path == "$"


def test_unsupported_version_argument_is_refused() -> None:
    with pytest.raises(XapiError) as err:
        parse_statements(json.dumps(MINIMAL).encode(), "0.95")
    assert err.value.status == 400


_REMEMBERED = {"verb": {"id": "http://ex.com/v", "display": {"en-US": "did"}},
               "object": {"id": "http://ex.com/a", "definition": {"name": {"en": "A"}, "description": {"vi": "B"},
                                                                    "type": "http://ex.com/t"}},
               "result": {"duration": "PT5M"},
               "context": {"language": "vi-VN", "contextActivities": {"parent": [{"id": "http://ex.com/p"}],
                                                                      "other": {"id": "http://ex.com/o"}}}}
_IRI = "Expected an RFC 3987 IRI with a scheme (e.g. http://example.com/x)"
_TAG = "Expected an RFC 5646 language tag (e.g. en-US)"


@pytest.mark.parametrize("in_substatement", [False, True])
@pytest.mark.parametrize(
    "path, value, message, error_path",
    [
        ("verb.id", "no scheme", _IRI, "verb.id"),
        ("verb.id", "http://[::1", _IRI, "verb.id"),
        ("object.definition.type", "http://ex.com/ x", _IRI, "object.definition.type"),
        ("context.contextActivities.parent[0].id", "", _IRI, "context.contextActivities.parent[0].id"),
        ("context.contextActivities.other.id", "x", _IRI, "context.contextActivities.other.id"),
        ("verb.display", {"en_US": "x"}, f"Invalid key: {_TAG}", "verb.display"),
        ("object.definition.name", {"en-US": "x", "": "y"}, f"Invalid key: {_TAG}", "object.definition.name"),
        ("object.definition.description", {"en-US\n": "x"}, f"Invalid key: {_TAG}", "object.definition.description"),
        ("context.language", "toolongtag-", _TAG, "context.language"),
        ("result.duration", "5M", "Expected an ISO 8601 duration (e.g. PT1H30M, P3Y, P4W)", "result.duration"),
        ("result.duration", "PT5M\n", "Expected an ISO 8601 duration (e.g. PT1H30M, P3Y, P4W)", "result.duration"),
    ],
)
def test_fields_checked_from_remembered_matches_fail_as_their_patterns_did(
    path: str, value: Any, message: str, error_path: str, in_substatement: bool
) -> None:
    """Verb ids, display and definition language maps, activity types and
    context activity ids, context language and result duration are checked
    in their Struct (lrs.xapi.common.is_iri and others remember what matched)
    rather than by msgspec's pattern: the same 400, message and path, twice
    (the second time after the good values were remembered)."""
    statement = changed({"actor": {"mbox": "mailto:a@example.com"}, **_REMEMBERED}, path, value)
    prefix = "$[0]"
    if in_substatement:
        statement = {"actor": {"mbox": "mailto:z@example.com"}, "verb": {"id": "http://ex.com/v"},
                     "object": {"objectType": "SubStatement", **statement}}
        prefix = "$[0].object"
    for _ in range(2):
        with pytest.raises(XapiError) as caught:
            parse_statements(json.dumps([statement]), "1.0.3")
        assert caught.value.status == 400
        assert caught.value.path == f"{prefix}.{error_path}"
        assert str(caught.value).startswith(message), str(caught.value)
    parse_statements(json.dumps([{"actor": {"mbox": "mailto:a@example.com"}, **_REMEMBERED}]), "1.0.3")
