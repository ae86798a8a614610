"""format=exact|ids|canonical and Accept-Language selection."""

from __future__ import annotations

import copy

import pytest
from hypothesis import given, settings

from lrs.ingest.formats import format_statement, parse_accept_language, pick_language
from lrs.xapi.equivalence import statements_equivalent
from tests.unit.test_equivalence import statement_bodies

ANA = {"objectType": "Agent", "name": "Ana", "mbox": "mailto:ana@example.com"}
BO = {"name": "Bo", "account": {"homePage": "http://lms.example.com", "name": "bo"}}
NAMES = {"en-US": "Course", "fr": "Cours", "de-CH": "Kurs"}


def _activity(activity_id, **definition):
    return {"objectType": "Activity", "id": activity_id, "definition": {"name": dict(NAMES), **definition}}


def _statement():
    sub = {
        "objectType": "SubStatement",
        "actor": {"objectType": "Group", "name": "anon", "member": [ANA, BO]},
        "verb": {"id": "http://example.com/planned", "display": {"en": "planned", "fr": "prévu"}},
        "object": _activity("http://example.com/sub"),
        "context": {"contextActivities": {"parent": [_activity("http://example.com/sub-parent")]}},
    }
    return {
        "id": "6690e6c9-3ef0-4ed3-8b37-7f3964730bee",
        "actor": {"objectType": "Group", "name": "Team", "mbox": "mailto:team@example.com", "member": [ANA]},
        "verb": {"id": "http://example.com/did", "display": {"en-US": "did", "fr-FR": "a fait"}},
        "object": sub,
        "context": {
            "instructor": BO,
            "team": {"objectType": "Group", "openid": "http://id.example.com/t", "name": "T"},
            "contextActivities": {
                "parent": [_activity("http://example.com/parent")],
                "other": {"id": "http://example.com/single", "definition": {"name": dict(NAMES)}},
            },
            "registration": "ec531277-b57b-4c15-8d91-d292c5b2b8f7",
        },
        "result": {"success": True},
        "authority": {"objectType": "Agent", "name": "key", "account": {"homePage": "http://lrs", "name": "k"}},
        "attachments": [
            {
                "usageType": "http://example.com/u",
                "display": {"en": "Certificate", "fr": "Certificat"},
                "description": {"en": "desc", "fr": "descr"},
                "contentType": "application/pdf",
                "length": 10,
                "sha2": "ab" * 32,
            }
        ],
        "stored": "2024-05-01T10:00:00Z",
        "timestamp": "2024-05-01T10:00:00Z",
        "version": "1.0.0",
    }


def test_exact_returns_the_statement_unchanged():
    stmt = _statement()
    assert format_statement(stmt, "exact", ["fr"]) is stmt


def test_ids_reduces_agents_groups_activities_and_verbs():
    stmt = _statement()
    before = copy.deepcopy(stmt)
    out = format_statement(stmt, "ids", [])
    assert stmt == before, "input must not be modified"
    assert out["actor"] == {"objectType": "Group", "mbox": "mailto:team@example.com"}
    assert out["verb"] == {"id": "http://example.com/did"}
    assert out["authority"] == {"objectType": "Agent", "account": {"homePage": "http://lrs", "name": "k"}}
    assert out["context"]["instructor"] == {"objectType": "Agent", "account": BO["account"]}
    assert out["context"]["team"] == {"objectType": "Group", "openid": "http://id.example.com/t"}
    assert out["context"]["contextActivities"] == {
        "parent": [{"id": "http://example.com/parent"}],
        "other": [{"id": "http://example.com/single"}],
    }
    sub = out["object"]
    assert sub["objectType"] == "SubStatement"
    assert sub["actor"] == {
        "objectType": "Group",
        "member": [
            {"objectType": "Agent", "mbox": "mailto:ana@example.com"},
            {"objectType": "Agent", "account": BO["account"]},
        ],
    }
    assert sub["verb"] == {"id": "http://example.com/planned"}
    assert sub["object"] == {"id": "http://example.com/sub"}
    assert sub["context"]["contextActivities"]["parent"] == [{"id": "http://example.com/sub-parent"}]
    # Everything that is not an Agent, Group, Activity or Verb stays as stored.
    for key in ("id", "result", "attachments", "stored", "timestamp", "version"):
        assert out[key] == stmt[key]
    assert out["context"]["registration"] == stmt["context"]["registration"]


def test_ids_keeps_agent_objects_and_statement_refs_identifiable():
    stmt = {
        "actor": {"mbox": "mailto:a@example.com", "name": "A"},
        "verb": {"id": "http://example.com/v"},
        "object": {"objectType": "Agent", "mbox_sha1sum": "ab" * 20, "name": "B"},
    }
    assert format_statement(stmt, "ids", [])["object"] == {"objectType": "Agent", "mbox_sha1sum": "ab" * 20}
    ref = {**stmt, "object": {"objectType": "StatementRef", "id": "6690e6c9-3ef0-4ed3-8b37-7f3964730bee"}}
    assert format_statement(ref, "ids", [])["object"] == ref["object"]


def test_ids_keeps_2_0_context_agents_identifiable():
    stmt = {
        "actor": {"mbox": "mailto:a@example.com"},
        "verb": {"id": "http://example.com/v"},
        "object": {"id": "http://example.com/x"},
        "context": {
            "contextAgents": [{"objectType": "contextAgent", "agent": ANA, "relevantTypes": ["http://example.com/t"]}],
            "contextGroups": [{"objectType": "contextGroup", "group": {"objectType": "Group", "member": [BO]}}],
        },
    }
    out = format_statement(stmt, "ids", [])["context"]
    assert out["contextAgents"] == [
        {"objectType": "contextAgent", "agent": {"objectType": "Agent", "mbox": ANA["mbox"]}, "relevantTypes": ["http://example.com/t"]}
    ]
    assert out["contextGroups"][0]["group"] == {"objectType": "Group", "member": [{"objectType": "Agent", "account": BO["account"]}]}


def test_canonical_reduces_each_language_map_to_one_entry():
    stmt = _statement()
    stmt["object"]["object"]["definition"].update(
        {
            "description": {"en-US": "d", "fr": "d-fr"},
            "interactionType": "choice",
            "choices": [{"id": "a", "description": {"en-US": "A", "fr": "A-fr"}}],
        }
    )
    before = copy.deepcopy(stmt)
    out = format_statement(stmt, "canonical", ["fr", "en"])
    assert stmt == before, "input must not be modified"
    assert out["verb"]["display"] == {"fr-FR": "a fait"}  # the range "fr" matches "fr-FR"
    assert out["attachments"][0]["display"] == {"fr": "Certificat"}
    assert out["attachments"][0]["description"] == {"fr": "descr"}
    assert out["context"]["contextActivities"]["parent"][0]["definition"]["name"] == {"fr": "Cours"}
    assert out["context"]["contextActivities"]["other"][0]["definition"]["name"] == {"fr": "Cours"}
    sub = out["object"]
    assert sub["verb"]["display"] == {"fr": "prévu"}
    definition = sub["object"]["definition"]
    assert definition["name"] == {"fr": "Cours"}
    assert definition["description"] == {"fr": "d-fr"}
    assert definition["choices"] == [{"id": "a", "description": {"fr": "A-fr"}}]
    assert sub["context"]["contextActivities"]["parent"][0]["definition"]["name"] == {"fr": "Cours"}
    # Agents and Groups stay as in exact.
    assert out["actor"] == stmt["actor"] and out["context"]["instructor"] == BO
    assert sub["actor"] == stmt["object"]["actor"]


def test_canonical_without_preferences_takes_the_first_entry():
    out = format_statement(_statement(), "canonical", [])
    assert out["verb"]["display"] == {"en-US": "did"}


@settings(max_examples=100, deadline=None)
@given(statement_bodies())
def test_canonical_is_the_same_statement(stmt):
    # Only verb displays, activity definitions and attachment maps change.
    before = copy.deepcopy(stmt)
    out = format_statement(stmt, "canonical", ["fr"])
    assert stmt == before
    without_attachments = {k: v for k, v in out.items() if k != "attachments"}
    assert statements_equivalent(without_attachments, {k: v for k, v in stmt.items() if k != "attachments"})
    for formatted, original in zip(out.get("attachments", []), stmt.get("attachments", []), strict=True):
        assert formatted["display"].items() <= original["display"].items() and len(formatted["display"]) == 1


@settings(max_examples=100, deadline=None)
@given(statement_bodies())
def test_formats_do_not_modify_their_input(stmt):
    before = copy.deepcopy(stmt)
    format_statement(stmt, "ids", [])
    format_statement(stmt, "canonical", ["en"])
    assert stmt == before


def test_unknown_format_is_a_programming_error():
    with pytest.raises(ValueError):
        format_statement(_statement(), "full", [])


# -- language selection ---------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, []),
        ("", []),
        ("fr", ["fr"]),
        ("fr-CH, fr;q=0.9, en;q=0.8, *;q=0.5", ["fr-CH", "fr", "en", "*"]),
        ("en;q=0.5, de", ["de", "en"]),
        ("de;q=0.5, en;q=0.5", ["de", "en"]),
        ("en, fr;q=0, es;q=bad", ["en"]),
        (" , en ,", ["en"]),
    ],
)
def test_parse_accept_language(header, expected):
    assert parse_accept_language(header) == expected


MAP = {"en-US": "color", "en-GB": "colour", "fr": "couleur"}


@pytest.mark.parametrize(
    ("languages", "expected"),
    [
        (["en-GB"], {"en-GB": "colour"}),
        (["EN-gb"], {"en-GB": "colour"}),
        (["en"], {"en-US": "color"}),  # a range matches tags it prefixes
        (["de", "fr"], {"fr": "couleur"}),
        (["fr-CA"], {"fr": "couleur"}),  # primary-language fallback
        (["fr-CA", "en"], {"en-US": "color"}),  # ... only after every range had its RFC 2616 match
        (["de"], {"en-US": "color"}),  # first entry when nothing fits
        (["*"], {"en-US": "color"}),
        (["*", "fr"], {"fr": "couleur"}),
        ([], {"en-US": "color"}),
    ],
)
def test_pick_language(languages, expected):
    assert pick_language(MAP, languages) == expected


def test_pick_language_keeps_single_entry_maps():
    single = {"de": "Farbe"}
    assert pick_language(single, ["en"]) is single
