"""Canonical Activity definitions (Data 2.4.4.1.s4) and the Person object (Communication 2.4)."""

from __future__ import annotations

from lrs.documents.activities import (
    activity_definitions_in,
    activity_object,
    authority_credential_key,
    merge_definition,
)
from lrs.documents.agents import agent_names_in, person_object

A, B, C, D = (f"http://example.org/act/{n}" for n in "abcd")


def test_definitions_found_in_object_context_and_substatement() -> None:
    statement = {
        "object": {
            "objectType": "SubStatement",
            "actor": {"mbox": "mailto:x@example.org"},
            "verb": {"id": "http://example.org/v"},
            "object": {"id": C, "definition": {"name": {"en": "c"}}},
            "context": {"contextActivities": {"other": {"id": D, "definition": {"type": "http://t/d"}}}},
        },
        "context": {
            "contextActivities": {
                "parent": [{"id": A, "definition": {"name": {"en": "a"}}}, {"id": B}],
                "category": [{"objectType": "Activity", "id": B, "definition": {"type": "http://t/b"}}],
            }
        },
    }
    assert activity_definitions_in(statement) == [
        (C, {"name": {"en": "c"}}),
        (D, {"type": "http://t/d"}),
        (A, {"name": {"en": "a"}}),
        (B, {"type": "http://t/b"}),
    ]


def test_no_definitions_for_agents_statement_refs_or_empty_definitions() -> None:
    assert activity_definitions_in({"object": {"objectType": "Agent", "mbox": "mailto:a@b.c"}}) == []
    assert activity_definitions_in({"object": {"objectType": "StatementRef", "id": "x"}}) == []
    assert activity_definitions_in({"object": {"id": A, "definition": {}}}) == []


def test_merge_keeps_other_languages_and_replaces_plain_properties() -> None:
    first = {"name": {"en-US": "Unit", "vi-VN": "Bài"}, "type": "http://t/1", "extensions": {"http://e/1": 1}}
    second = {"name": {"en-US": "Unit One"}, "type": "http://t/2", "extensions": {"http://e/2": 2},
              "choices": [{"id": "a"}]}
    assert merge_definition(first, second) == {
        "name": {"en-US": "Unit One", "vi-VN": "Bài"},
        "type": "http://t/2",
        "extensions": {"http://e/1": 1, "http://e/2": 2},
        "choices": [{"id": "a"}],
    }
    assert merge_definition(None, second) == second
    assert first == {"name": {"en-US": "Unit", "vi-VN": "Bài"}, "type": "http://t/1", "extensions": {"http://e/1": 1}}


def test_activity_object_without_definition_is_still_an_activity() -> None:
    assert activity_object(A, None) == {"objectType": "Activity", "id": A}
    assert activity_object(A, {"type": "http://t"}) == {"objectType": "Activity", "id": A, "definition": {"type": "http://t"}}


def test_authority_credential_key_requires_our_homepage() -> None:
    statement = {"authority": {"objectType": "Agent", "account": {"homePage": "http://lrs", "name": "k1"}}}
    assert authority_credential_key(statement, "http://lrs") == "k1"
    assert authority_credential_key(statement, "http://other") is None
    assert authority_credential_key({}, "http://lrs") is None


def test_person_for_unknown_agent_is_the_agent_in_arrays() -> None:
    assert person_object({"objectType": "Agent", "name": "Ann", "mbox": "mailto:ann@example.org"}) == {
        "objectType": "Person", "name": ["Ann"], "mbox": ["mailto:ann@example.org"],
    }
    account = {"homePage": "http://h", "name": "u1"}
    assert person_object({"account": account}, ["U One", "U One", "Yu"]) == {
        "objectType": "Person", "name": ["U One", "Yu"], "account": [account],
    }


def test_agent_names_in_statement() -> None:
    me = {"mbox": "mailto:ann@example.org"}
    statement = {
        "actor": {"objectType": "Group", "name": "Team", "member": [{**me, "name": "Ann"}]},
        "object": {"objectType": "Agent", **me, "name": "Annie"},
        "context": {
            "instructor": {**me, "name": "Ann"},
            "contextAgents": [{"objectType": "contextAgent", "agent": {**me, "name": "A."}}],
        },
    }
    assert agent_names_in(statement, "mbox:mailto:ann@example.org") == ["Ann", "Annie", "A."]
    assert agent_names_in(statement, "mbox:mailto:other@example.org") == []


def test_definitions_fold_in_log_order():
    """The updates of a group in log order, as the writer makes them
    (lrs.store.group_columns.group_definition_updates, whose order
    tests/unit/test_writer_group_columns.py pins), fold in that order."""
    from lrs.documents.activities import DefinitionUpdate, activity_definitions_in, fold_definitions

    first = {"object": {"id": "http://a", "definition": {"name": {"en": "A"}, "type": "http://t/1"}}}
    second = {"object": {"id": "http://a", "definition": {"name": {"vi": "Á"}, "type": "http://t/2"}},
              "context": {"contextActivities": {"parent": [{"id": "http://p", "definition": {"name": {"en": "P"}}}]}}}
    updates = [DefinitionUpdate(tenant, activity_id, definition, position)
               for tenant, statement, position in [("t1", first, 5), ("t1", second, 6), ("t2", first, 7)]
               for activity_id, definition in activity_definitions_in(statement)]
    assert [(u.tenant, u.activity_id, u.position) for u in updates] == [
        ("t1", "http://a", 5), ("t1", "http://a", 6), ("t1", "http://p", 6), ("t2", "http://a", 7)]
    current = {("t1", "http://a"): {"name": {"fr": "A-fr"}, "moreInfo": "http://m"}}
    changed = fold_definitions(current, updates)
    assert changed[("t1", "http://a")] == (
        {"name": {"fr": "A-fr", "en": "A", "vi": "Á"}, "moreInfo": "http://m", "type": "http://t/2"}, 6)
    assert changed[("t1", "http://p")] == ({"name": {"en": "P"}}, 6)
    assert changed[("t2", "http://a")] == ({"name": {"en": "A"}, "type": "http://t/1"}, 7)
    # Folding the same updates again changes nothing (a re-fold after a crash is harmless),
    # and a definition the LRS already has is not written again.
    assert fold_definitions({slot: d for slot, (d, _) in changed.items()}, updates) == {}


def test_repeated_definitions_are_dropped_and_the_fold_is_the_same():
    from lrs.documents.activities import DefinitionUpdate, drop_repeated_definitions, fold_definitions

    a1, a2, one, true = {"name": {"en": "A"}}, {"name": {"vi": "Á"}}, {"extensions": {"http://x": 1}}, \
        {"extensions": {"http://x": True}}
    updates = [
        DefinitionUpdate("t", "http://a", a1, 1),
        DefinitionUpdate("t", "http://a", dict(a1), 2),  # repeats position 1: dropped
        DefinitionUpdate("t", "http://b", a1, 3),  # another Activity: kept
        DefinitionUpdate("t", "http://a", a1, 4),  # still the last of http://a: dropped
        DefinitionUpdate("u", "http://a", a1, 5),  # another tenant: kept
        DefinitionUpdate("t", "http://a", a2, 6),
        DefinitionUpdate("t", "http://a", a1, 7),  # not a repeat of the last (a2): kept
        DefinitionUpdate("t", "http://c", one, 8),
        DefinitionUpdate("t", "http://c", true, 9),  # equal in Python, not in JSON: kept
    ]
    kept = drop_repeated_definitions(updates)
    assert [u.position for u in kept] == [1, 3, 5, 6, 7, 8, 9]
    current = {("t", "http://a"): {"name": {"fr": "A-fr"}}}
    assert fold_definitions(current, kept) == fold_definitions(current, updates)
    assert fold_definitions(current, kept)[("t", "http://a")] == ({"name": {"fr": "A-fr", "en": "A", "vi": "Á"}}, 6)


def test_person_from_several_identifiers_lists_each_once():
    from lrs.documents.agents import person_from_identifiers

    account = {"homePage": "https://id.example.gov", "name": "u-1"}
    person = person_from_identifiers(
        [{"mbox": "mailto:an@example.org", "name": "An"}, {"account": account, "name": "Nguyễn An"},
         {"mbox": "mailto:an@work.example.org"}, {"mbox": "mailto:an@example.org"}],
        ["An", "A. Nguyen"],
    )
    assert person == {"objectType": "Person", "name": ["An", "Nguyễn An", "A. Nguyen"],
                      "mbox": ["mailto:an@example.org", "mailto:an@work.example.org"], "account": [account]}
