"""Valid statements the LRS must accept, returned exactly as sent."""

from __future__ import annotations

import copy
import json

import pytest

from lrs.xapi import parse_statement, parse_statements

ACTOR = {"objectType": "Agent", "name": "Ada", "mbox": "mailto:ada@example.com"}
VERB = {"id": "http://adlnet.gov/expapi/verbs/completed", "display": {"en-US": "completed"}}
ACTIVITY = {"id": "http://example.com/activities/course-1"}

MINIMAL = {
    "actor": {"mbox": "mailto:xapi@adlnet.gov"},
    "verb": {"id": "http://adlnet.gov/expapi/verbs/created"},
    "object": {"id": "http://example.adlnet.gov/xapi/example/activity"},
}

FULL = {
    "id": "6690e6c9-3ef0-4ed3-8b37-7f3964730bee",
    "actor": {
        "name": "Team PB",
        "mbox": "mailto:teampb@example.com",
        "member": [
            {"name": "Andrew", "account": {"homePage": "http://www.example.com", "name": "13936749"}, "objectType": "Agent"},
            {"name": "Toby", "openid": "http://toby.openid.example.org/", "objectType": "Agent"},
            {"name": "Ena", "mbox_sha1sum": "ebd31e95054c018b10727ccffd2ef2ec3a016ee9", "objectType": "Agent"},
        ],
        "objectType": "Group",
    },
    "verb": {"id": "http://adlnet.gov/expapi/verbs/attended", "display": {"en-GB": "attended", "en-US": "attended"}},
    "result": {
        "extensions": {"http://example.com/profiles/meetings/resultextensions/minuteslocation": "X:\\meetings"},
        "score": {"scaled": 0.5, "raw": 5, "min": 0, "max": 10},
        "success": True,
        "completion": True,
        "response": "We agreed on some example actions.",
        "duration": "PT1H0M0S",
    },
    "context": {
        "registration": "ec531277-b57b-4c15-8d91-d292c5b2b8f7",
        "contextActivities": {
            "parent": [{"id": "http://www.example.com/meetings/series/267", "objectType": "Activity"}],
            "category": [
                {
                    "id": "http://www.example.com/meetings/categories/teammeeting",
                    "objectType": "Activity",
                    "definition": {
                        "name": {"en": "team meeting"},
                        "description": {"en": "A category of meeting used for regular team meetings."},
                        "type": "http://example.com/expapi/activities/meetingcategory",
                    },
                }
            ],
            "other": {"id": "http://www.example.com/meetings/occurances/34257"},
            "grouping": [],
        },
        "instructor": {"name": "Andrew", "account": {"homePage": "http://www.example.com", "name": "13936749"}, "objectType": "Agent"},
        "team": {"name": "Team PB", "mbox": "mailto:teampb@example.com", "objectType": "Group"},
        "revision": "r2",
        "platform": "Example virtual meeting software",
        "language": "tlh",
        "statement": {"objectType": "StatementRef", "id": "6690e6c9-3ef0-4ed3-8b37-7f3964730bee"},
        "extensions": {"http://example.com/ext/nullable": None, "http://example.com/ext/nested": {"a": [1, None, {"b": None}]}},
    },
    "timestamp": "2013-05-18T05:32:34.804+00:00",
    "stored": "2013-05-18T05:32:34.804Z",
    "authority": {"account": {"homePage": "http://cloud.scorm.com/", "name": "anonymous"}, "objectType": "Agent"},
    "version": "1.0.0",
    "object": {
        "id": "http://www.example.com/meetings/occurances/34534",
        "definition": {
            "extensions": {"http://example.com/profiles/meetings/room": {"name": "Kilby", "id": "http://example.com/rooms/342"}},
            "name": {"en-GB": "example meeting", "en-US": "example meeting"},
            "description": {"en-GB": "An example meeting.", "zh-Hant-TW": "會議"},
            "type": "http://adlnet.gov/expapi/activities/meeting",
            "moreInfo": "http://virtualmeeting.example.com/345256",
        },
        "objectType": "Activity",
    },
    "attachments": [
        {
            "usageType": "http://adlnet.gov/expapi/attachments/signature",
            "display": {"en-US": "Signature"},
            "description": {"en-US": "A test signature"},
            "contentType": "application/octet-stream",
            "length": 4235,
            "sha2": "672fa5fa658017f1b72d65036f13379c6ab05d4ab3b6664908d8acf0b6a0c634",
        },
        {
            "usageType": "http://example.com/attachment-usage/certificate",
            "display": {"en-US": "Certificate"},
            "contentType": "application/pdf; charset=binary",
            "length": 0,
            "sha2": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "fileUrl": "http://example.com/certificates/1.pdf",
        },
    ],
}

_C = "http://adlnet.gov/expapi/activities/cmi.interaction"


def _components(*ids: str) -> list[dict]:
    return [{"id": i, "description": {"en-US": i.title()}} for i in ids]


INTERACTIONS = {
    "true-false": {"interactionType": "true-false", "correctResponsesPattern": ["true"]},
    "choice": {"interactionType": "choice", "correctResponsesPattern": ["golf[,]tetris"], "choices": _components("golf", "facebook", "tetris")},
    "fill-in": {"interactionType": "fill-in", "correctResponsesPattern": ["Bob's your uncle"]},
    "long-fill-in": {"interactionType": "long-fill-in", "correctResponsesPattern": ["{case_matters=false}{lang=en}To store."]},
    "likert": {"interactionType": "likert", "correctResponsesPattern": ["likert_3"], "scale": _components("likert_0", "likert_3")},
    "matching": {"interactionType": "matching", "correctResponsesPattern": ["ben[.]3[,]chris[.]2"], "source": _components("ben", "chris"), "target": _components("2", "3")},
    "performance": {"interactionType": "performance", "correctResponsesPattern": ["pong[.]1:[,]dg[.]:10"], "steps": _components("pong", "dg")},
    "sequencing": {"interactionType": "sequencing", "correctResponsesPattern": ["tim[,]mike"], "choices": _components("tim", "mike")},
    "numeric": {"interactionType": "numeric", "correctResponsesPattern": ["4[:]"]},
    "other": {"interactionType": "other", "correctResponsesPattern": ["(35.937432,-86.868896)"]},
    "no-correct-answer": {"interactionType": "choice", "correctResponsesPattern": [], "choices": []},
}


def interaction_statement(definition: dict) -> dict:
    return {
        "actor": ACTOR,
        "verb": {"id": "http://adlnet.gov/expapi/verbs/answered"},
        "object": {"objectType": "Activity", "id": "http://example.com/q/1", "definition": {"type": _C, "description": {"en-US": "Q?"}, **definition}},
        "result": {"response": "true", "success": True},
    }


SUBSTATEMENT = {
    "actor": ACTOR,
    "verb": {"id": "http://example.com/planned", "display": {"en-US": "planned"}},
    "object": {
        "objectType": "SubStatement",
        "actor": {"objectType": "Agent", "mbox": "mailto:test@example.com"},
        "verb": {"id": "http://example.com/visited", "display": {"en-US": "will visit"}},
        "object": {"objectType": "Activity", "id": "http://example.com/website", "definition": {"name": {"en-US": "Some Awesome Website"}}},
        "result": {"completion": False},
        "context": {"platform": "web", "contextActivities": {"parent": {"id": "http://example.com/site"}}},
        "timestamp": "2099-01-01T00:00:00Z",
    },
}

SUBSTATEMENT_OF_REF = {
    "actor": ACTOR,
    "verb": VERB,
    "object": {
        "objectType": "SubStatement",
        "actor": {"objectType": "Group", "member": [{"mbox": "mailto:a@example.com"}]},
        "verb": {"id": "http://example.com/confirmed"},
        "object": {"objectType": "StatementRef", "id": "9e13cefd-53d3-4eac-b5ed-2cf6693903bb"},
    },
}

VOIDING = {
    "actor": {"objectType": "Agent", "name": "Example Admin", "mbox": "mailto:admin@example.adlnet.gov"},
    "verb": {"id": "http://adlnet.gov/expapi/verbs/voided", "display": {"en-US": "voided"}},
    "object": {"objectType": "StatementRef", "id": "e05aa883-acaf-40ad-bf54-02c8ce485fb0"},
}

ANONYMOUS_GROUP_ACTOR = {
    "actor": {"objectType": "Group", "name": "ad hoc", "member": [{"mbox": "mailto:a@example.com"}, {"openid": "http://openid.example.com/b"}]},
    "verb": VERB,
    "object": ACTIVITY,
}

AGENT_OBJECT = {"actor": ACTOR, "verb": {"id": "http://example.com/interviewed"}, "object": {"objectType": "Agent", "mbox_sha1sum": "ebd31e95054c018b10727ccffd2ef2ec3a016ee9"}}
GROUP_OBJECT = {
    "actor": ACTOR,
    "verb": {"id": "http://example.com/mentored"},
    "object": {"objectType": "Group", "account": {"homePage": "http://example.com/homePage", "name": "GroupAccount"}, "member": [{"mbox": "mailto:andrew@example.com", "objectType": "Agent"}]},
    "context": {"contextActivities": {"grouping": [{"id": "http://example.com/algebra-1"}]}},
}
OAUTH_AUTHORITY = {
    **MINIMAL,
    "authority": {
        "objectType": "Group",
        "member": [{"account": {"homePage": "http://example.com/xAPI/OAuth/Token", "name": "oauth_consumer_x75db"}}, {"mbox": "mailto:bob@example.com"}],
    },
}
TIMESTAMP_FORMATS = [
    "2015-11-18T12:17:00+00:00",
    "2015-11-18T12:17:00Z",
    "2015-11-18T12:17:00.123456789Z",
    "2015-11-18T12:17:00.1-05:00",
    "2015-11-18T12:17Z",
    "2015-11-18T12:17:00",
    "20151118T121700+0100",
    "2016-12-31T23:59:60Z",
    "2024-02-29T00:00:00+14:00",
]
DURATIONS = ["PT4H35M59.14S", "P16559.14S", "P3Y1M29DT4H35M59.14S", "P3Y", "P4W", "PT0S", "P1D", "PT1.5H"]

CORPUS = {
    "minimal": MINIMAL,
    "full": FULL,
    "substatement": SUBSTATEMENT,
    "substatement-of-ref": SUBSTATEMENT_OF_REF,
    "voiding": VOIDING,
    "anonymous-group-actor": ANONYMOUS_GROUP_ACTOR,
    "agent-object": AGENT_OBJECT,
    "group-object": GROUP_OBJECT,
    "oauth-authority": OAUTH_AUTHORITY,
    **{f"interaction-{name}": interaction_statement(d) for name, d in INTERACTIONS.items()},
    **{f"timestamp-{ts}": {**MINIMAL, "timestamp": ts} for ts in TIMESTAMP_FORMATS},
    **{f"duration-{d}": {**MINIMAL, "result": {"duration": d}} for d in DURATIONS},
}


@pytest.mark.parametrize("name", sorted(CORPUS))
@pytest.mark.parametrize("version", ["1.0.3", "2.0.0"])
def test_valid_statement_is_accepted_exactly_as_sent(name: str, version: str) -> None:
    statement = copy.deepcopy(CORPUS[name])
    body = json.dumps(statement).encode()
    assert parse_statements(body, version) == [statement]
    assert parse_statement(body, version) == statement


def test_batch_returns_every_statement_in_order() -> None:
    batch = [CORPUS[name] for name in sorted(CORPUS)]
    assert parse_statements(json.dumps(batch).encode(), "1.0.3") == batch


def test_numbers_keep_their_json_form() -> None:
    statement = {**MINIMAL, "result": {"score": {"raw": 5, "min": 0.0, "max": 10}}}
    (parsed,) = parse_statements(json.dumps(statement).encode(), "1.0.3")
    score = parsed["result"]["score"]
    assert type(score["raw"]) is int and type(score["min"]) is float and type(score["max"]) is int


def test_str_body_is_accepted_too() -> None:
    assert parse_statements(json.dumps(MINIMAL), "1.0.3") == [MINIMAL]


def test_context_agents_and_groups_are_accepted_in_2_0() -> None:
    statement = {
        **MINIMAL,
        "version": "2.0.0",
        "context": {
            "contextAgents": [
                {"objectType": "contextAgent", "agent": {"mbox": "mailto:coach@example.com"}, "relevantTypes": ["http://example.com/types/coach"]},
                {"objectType": "contextAgent", "agent": {"objectType": "Agent", "openid": "http://openid.example.com/x"}},
            ],
            "contextGroups": [
                {"objectType": "contextGroup", "group": {"objectType": "Group", "member": [{"mbox": "mailto:a@example.com"}]}, "relevantTypes": ["http://example.com/types/team"]}
            ],
        },
    }
    assert parse_statements(json.dumps(statement).encode(), "2.0.0") == [statement]


@pytest.mark.parametrize("statement_version", ["1.0.0", "1.0.3", "1.0.9"])
def test_1_0_x_statement_versions_are_accepted_under_both_headers(statement_version: str) -> None:
    statement = {**MINIMAL, "version": statement_version}
    for version in ("1.0.3", "2.0.0"):
        assert parse_statements(json.dumps(statement).encode(), version) == [statement]
