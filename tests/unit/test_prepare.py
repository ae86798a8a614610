"""prepare_statements: LRS-set properties, batch rules and read-model index columns."""

from __future__ import annotations

import copy
import functools
import itertools
import uuid

import pytest
from hypothesis import given, settings

from lrs.ingest.model import PreparedStatement
from lrs.ingest.prepare import VOIDED_VERB, prepare_statements
from lrs.xapi.equivalence import statements_equivalent
from lrs.xapi.errors import XapiError
from tests.statements import statement
from tests.unit.test_equivalence import statement_bodies

AUTHORITY = {"objectType": "Agent", "account": {"homePage": "http://lrs.example.com", "name": "key-1"}}


def _ids():
    counter = itertools.count(1)
    return lambda: uuid.UUID(int=next(counter))


def _prepare(statements, version="1.0.3", authority=AUTHORITY):
    return prepare_statements(statements, version=version, authority=authority, new_id=_ids())


_stmt = functools.partial(statement, mbox="mailto:ana@example.com", activity="http://example.com/course")


def test_assigns_ids_from_the_generator_and_keeps_given_ones():
    given = "6690e6c9-3ef0-4ed3-8b37-7f3964730bee"
    out = _prepare([_stmt(), _stmt(id=given), _stmt()])
    assert [p.statement_id for p in out] == [uuid.UUID(int=1), uuid.UUID(given), uuid.UUID(int=2)]
    assert [p.body["id"] for p in out] == [str(uuid.UUID(int=1)), given, str(uuid.UUID(int=2))]
    assert all(isinstance(p, PreparedStatement) for p in out)


def test_given_id_is_stored_in_standard_lowercase_form():
    out = _prepare([_stmt(id="6690E6C9-3EF0-4ED3-8B37-7F3964730BEE")])
    assert out[0].body["id"] == "6690e6c9-3ef0-4ed3-8b37-7f3964730bee"


def test_duplicate_ids_in_one_batch_name_the_id_and_path():
    dup = "6690e6c9-3ef0-4ed3-8b37-7f3964730bee"
    with pytest.raises(XapiError) as info:
        _prepare([_stmt(id=dup), _stmt(), _stmt(id=dup.upper())])
    err = info.value
    assert err.status == 400
    assert err.path == "$[2].id"
    assert dup in err.message and "$[0].id" in err.message


def test_authority_is_always_the_credentials_one():
    out = _prepare([_stmt(authority={"mbox": "mailto:forged@example.com"}), _stmt()])
    assert all(p.body["authority"] == AUTHORITY for p in out)


@pytest.mark.parametrize(("version", "stored_version"), [("1.0.3", "1.0.0"), ("2.0.0", "2.0.0")])
def test_version_defaults_by_request_version(version, stored_version):
    out = _prepare([_stmt(), _stmt(version="1.0.2")], version=version)
    assert out[0].body["version"] == stored_version
    assert out[1].body["version"] == "1.0.2"


def test_stored_is_dropped_and_timestamp_kept_as_the_same_instant_in_utc():
    out = _prepare([_stmt(stored="2020-01-01T00:00:00Z", timestamp="2024-05-01T10:00:00+02:00"), _stmt()])
    assert "stored" not in out[0].body
    assert out[0].has_timestamp and out[0].body["timestamp"] == "2024-05-01T08:00:00Z"
    assert not out[1].has_timestamp and "timestamp" not in out[1].body


def test_input_statements_are_not_modified():
    stmt = _stmt(
        stored="2020-01-01T00:00:00Z",
        context={"contextActivities": {"parent": {"id": "http://example.com/p"}}},
        object={
            "objectType": "SubStatement",
            "actor": {"mbox": "mailto:ana@example.com"},
            "verb": {"id": "http://example.com/v"},
            "object": {"id": "http://example.com/x"},
            "context": {"contextActivities": {"other": {"id": "http://example.com/o"}}},
        },
    )
    before = copy.deepcopy(stmt)
    _prepare([stmt])
    assert stmt == before


def test_context_activities_become_arrays_in_statement_and_substatement():
    stmt = _stmt(
        context={"contextActivities": {"parent": {"id": "http://example.com/p"}, "grouping": [{"id": "http://example.com/g"}]}},
        object={
            "objectType": "SubStatement",
            "actor": {"mbox": "mailto:ana@example.com"},
            "verb": {"id": "http://example.com/v"},
            "object": {"id": "http://example.com/x"},
            "context": {"contextActivities": {"other": {"id": "http://example.com/o"}}},
        },
    )
    body = _prepare([stmt])[0].body
    assert body["context"]["contextActivities"] == {
        "parent": [{"id": "http://example.com/p"}],
        "grouping": [{"id": "http://example.com/g"}],
    }
    assert body["object"]["context"]["contextActivities"] == {"other": [{"id": "http://example.com/o"}]}


def test_voiding_statement_names_its_target():
    target = "e05aa883-acaf-40ad-bf54-02c8ce485fb0"
    voiding = _stmt(verb={"id": VOIDED_VERB}, object={"objectType": "StatementRef", "id": target})
    ref = _stmt(object={"objectType": "StatementRef", "id": target})
    out = _prepare([voiding, ref, _stmt()])
    assert out[0].voids == uuid.UUID(target) and out[0].statement_ref == uuid.UUID(target)
    assert out[1].voids is None and out[1].statement_ref == uuid.UUID(target)
    assert out[2].voids is None and out[2].statement_ref is None
    assert out[0].activity_ids == () and out[0].verb_id == VOIDED_VERB


def test_agent_filter_keys_cover_actor_object_and_group_members():
    stmt = _stmt(
        actor={
            "objectType": "Group",
            "mbox": "mailto:team@example.com",
            "member": [{"mbox": "mailto:ana@example.com"}, {"openid": "http://id.example.com/bo"}],
        },
        object={"objectType": "Group", "member": [{"account": {"homePage": "http://lms", "name": "7"}}]},
    )
    p = _prepare([stmt])[0]
    assert p.actor_keys == (
        "mbox:mailto:team@example.com",
        "mbox:mailto:ana@example.com",
        "openid:http://id.example.com/bo",
        "account:http://lms|7",
    )
    assert p.activity_ids == ()


def test_related_keys_and_activities_cover_context_authority_and_substatement():
    sub = {
        "objectType": "SubStatement",
        "actor": {"mbox": "mailto:sub-actor@example.com"},
        "verb": {"id": "http://example.com/v"},
        "object": {"objectType": "Agent", "mbox": "mailto:sub-object@example.com"},
        "context": {
            "instructor": {"mbox": "mailto:sub-instructor@example.com"},
            "team": {"objectType": "Group", "member": [{"mbox": "mailto:sub-team@example.com"}]},
            "contextActivities": {"category": [{"id": "http://example.com/sub-cat"}]},
        },
    }
    stmt = _stmt(
        object=sub,
        context={
            "registration": "EC531277-B57B-4C15-8D91-D292C5B2B8F7",
            "instructor": {"mbox": "mailto:instructor@example.com"},
            "team": {"objectType": "Group", "mbox": "mailto:team@example.com"},
            "contextActivities": {
                "parent": [{"id": "http://example.com/parent"}],
                "grouping": [{"id": "http://example.com/grouping"}],
                "category": [{"id": "http://example.com/category"}],
                "other": [{"id": "http://example.com/other"}, {"id": "http://example.com/parent"}],
            },
        },
    )
    p = _prepare([stmt])[0]
    assert p.actor_keys == ("mbox:mailto:ana@example.com",)
    assert p.related_agent_keys == (
        "mbox:mailto:ana@example.com",
        "account:http://lrs.example.com|key-1",
        "mbox:mailto:instructor@example.com",
        "mbox:mailto:team@example.com",
        "mbox:mailto:sub-actor@example.com",
        "mbox:mailto:sub-object@example.com",
        "mbox:mailto:sub-instructor@example.com",
        "mbox:mailto:sub-team@example.com",
    )
    assert p.activity_ids == ()
    assert p.related_activity_ids == (
        "http://example.com/parent",
        "http://example.com/grouping",
        "http://example.com/category",
        "http://example.com/other",
        "http://example.com/sub-cat",
    )
    assert p.registration == uuid.UUID("ec531277-b57b-4c15-8d91-d292c5b2b8f7")


def test_substatement_activity_object_is_related_only():
    sub = {
        "objectType": "SubStatement",
        "actor": {"mbox": "mailto:ana@example.com"},
        "verb": {"id": "http://example.com/v"},
        "object": {"id": "http://example.com/sub-activity"},
    }
    p = _prepare([_stmt(object=sub)])[0]
    assert p.activity_ids == ()
    assert p.related_activity_ids == ("http://example.com/sub-activity",)


def test_activity_object_is_both_filter_and_related():
    p = _prepare([_stmt(object={"objectType": "Activity", "id": "http://example.com/a"})])[0]
    assert p.activity_ids == ("http://example.com/a",)
    assert p.related_activity_ids == ("http://example.com/a",)
    assert p.verb_id == "http://adlnet.gov/expapi/verbs/completed"
    assert p.registration is None


def test_2_0_context_agents_and_groups_are_related_agents():
    stmt = _stmt(
        context={
            "contextAgents": [{"objectType": "contextAgent", "agent": {"mbox": "mailto:coach@example.com"}}],
            "contextGroups": [
                {
                    "objectType": "contextGroup",
                    "group": {"objectType": "Group", "member": [{"mbox": "mailto:peer@example.com"}]},
                }
            ],
        }
    )
    p = _prepare([stmt], version="2.0.0")[0]
    assert p.actor_keys == ("mbox:mailto:ana@example.com",)
    assert "mbox:mailto:coach@example.com" in p.related_agent_keys
    assert "mbox:mailto:peer@example.com" in p.related_agent_keys


def test_oauth_style_group_authority_contributes_member_keys():
    authority = {
        "objectType": "Group",
        "member": [
            {"account": {"homePage": "http://lrs.example.com/OAuth/token", "name": "app"}},
            {"mbox": "mailto:user@example.com"},
        ],
    }
    p = _prepare([_stmt()], authority=authority)[0]
    assert p.related_agent_keys[1:] == ("account:http://lrs.example.com/OAuth/token|app", "mbox:mailto:user@example.com")
    assert p.body["authority"] is authority


def test_empty_batch():
    assert _prepare([]) == []


@settings(max_examples=100, deadline=None)
@given(statement_bodies())
def test_prepared_body_is_the_same_statement(stmt):
    stmt.pop("id", None)
    p = _prepare([stmt])[0]
    assert statements_equivalent(stmt, p.body)
    assert p.body["id"] == str(p.statement_id)
    assert set(p.actor_keys) <= set(p.related_agent_keys)
    assert set(p.activity_ids) <= set(p.related_activity_ids)
