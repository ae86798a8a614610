"""Query parameters of the document resources (Communication 2.3, 2.6, 2.7, 3.2.s3.b7)."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from lrs.documents.model import Resource
from lrs.documents.params import parse_agent, parse_document_params, parse_since
from lrs.xapi.errors import XapiError

ACTIVITY = "http://example.org/activities/a1"
AGENT = json.dumps({"objectType": "Agent", "name": "Ann", "mbox": "mailto:ann@example.org"})
REGISTRATION = "6F4A3F39-8E8B-4A9C-8B1E-2B8F3C1D9E77"


def parse(resource: Resource, method: str, **params: str):
    return parse_document_params(resource, method, params.items())


def test_state_single_document_key() -> None:
    parsed = parse(Resource.STATE, "PUT", activityId=ACTIVITY, agent=AGENT, stateId="s1", registration=REGISTRATION)
    key = parsed.key
    assert key.document_id == "s1"
    assert key.context.activity_id == ACTIVITY
    assert key.context.agent_key == "mbox:mailto:ann@example.org"
    assert key.context.agent == {"objectType": "Agent", "name": "Ann", "mbox": "mailto:ann@example.org"}
    assert key.registration_key == REGISTRATION.lower()


def test_same_agent_with_other_name_reaches_same_document() -> None:
    other = json.dumps({"mbox": "mailto:ann@example.org"})
    a = parse(Resource.STATE, "GET", activityId=ACTIVITY, agent=AGENT, stateId="s").key
    b = parse(Resource.STATE, "GET", activityId=ACTIVITY, agent=other, stateId="s").key
    assert a.context.agent_key == b.context.agent_key and a.document_id == b.document_id


def test_state_list_and_delete_all_have_no_id() -> None:
    listing = parse(Resource.STATE, "GET", activityId=ACTIVITY, agent=AGENT, since="2024-01-01T00:00:00Z")
    assert listing.document_id is None
    assert listing.since == datetime(2024, 1, 1, tzinfo=timezone.utc)
    assert parse(Resource.STATE, "DELETE", activityId=ACTIVITY, agent=AGENT).document_id is None


@pytest.mark.parametrize(
    "resource, method, params, names",
    [
        (Resource.STATE, "GET", {"agent": AGENT}, "activityId"),
        (Resource.STATE, "GET", {"activityId": ACTIVITY}, "agent"),
        (Resource.STATE, "PUT", {"activityId": ACTIVITY, "agent": AGENT}, "stateId"),
        (Resource.STATE, "POST", {"activityId": ACTIVITY, "agent": AGENT}, "stateId"),
        (Resource.ACTIVITY_PROFILE, "DELETE", {"activityId": ACTIVITY}, "profileId"),
        (Resource.AGENT_PROFILE, "DELETE", {"agent": AGENT}, "profileId"),
        (Resource.AGENT_PROFILE, "PUT", {"agent": AGENT}, "profileId"),
        (Resource.ACTIVITY_PROFILE, "GET", {"profileId": "p"}, "activityId"),
    ],
)
def test_missing_required_parameter_is_named(resource, method, params, names) -> None:
    with pytest.raises(XapiError) as info:
        parse(resource, method, **params)
    assert info.value.status == 400 and info.value.path == names


@pytest.mark.parametrize(
    "resource, method, params, bad",
    [
        (Resource.ACTIVITY_PROFILE, "GET", {"activityId": ACTIVITY, "agent": AGENT}, "agent"),
        (Resource.AGENT_PROFILE, "GET", {"agent": AGENT, "activityId": ACTIVITY}, "activityId"),
        (Resource.AGENT_PROFILE, "GET", {"agent": AGENT, "registration": REGISTRATION}, "registration"),
        (Resource.STATE, "GET", {"activityId": ACTIVITY, "agent": AGENT, "stateId": "s", "since": "2024-01-01T00:00:00Z"}, "since"),
        (Resource.STATE, "PUT", {"activityId": ACTIVITY, "agent": AGENT, "stateId": "s", "since": "2024-01-01T00:00:00Z"}, "since"),
        (Resource.STATE, "GET", {"activityId": ACTIVITY, "agent": AGENT, "stateid": "s"}, "stateid"),
    ],
)
def test_unknown_parameter_in_context_is_rejected(resource, method, params, bad) -> None:
    with pytest.raises(XapiError) as info:
        parse(resource, method, **params)
    assert info.value.status == 400 and info.value.path == bad


def test_case_hint_for_misspelled_parameter() -> None:
    with pytest.raises(XapiError, match="did you mean 'stateId'"):
        parse(Resource.STATE, "GET", activityId=ACTIVITY, agent=AGENT, stateid="s")


def test_repeated_parameter_is_rejected() -> None:
    items = [("activityId", ACTIVITY), ("agent", AGENT), ("stateId", "a"), ("stateId", "b")]
    with pytest.raises(XapiError, match="more than once"):
        parse_document_params(Resource.STATE, "GET", items)


@pytest.mark.parametrize(
    "params, where",
    [
        ({"activityId": "not an iri", "agent": AGENT}, "activityId"),
        ({"activityId": ACTIVITY, "agent": "{not json"}, "agent"),
        ({"activityId": ACTIVITY, "agent": json.dumps({"name": "no ifi"})}, "agent"),
        ({"activityId": ACTIVITY, "agent": AGENT, "registration": "nope"}, "registration"),
        ({"activityId": ACTIVITY, "agent": AGENT, "since": "yesterday"}, "since"),
        ({"activityId": ACTIVITY, "agent": AGENT, "since": "2024-02-30T00:00:00Z"}, "since"),
        ({"activityId": ACTIVITY, "agent": AGENT, "stateId": ""}, "stateId"),
    ],
)
def test_invalid_values_are_400(params, where) -> None:
    with pytest.raises(XapiError) as info:
        parse(Resource.STATE, "GET", **params)
    assert info.value.status == 400
    assert info.value.path is not None and info.value.path.startswith(where)


def test_group_is_not_an_agent_parameter() -> None:
    group = json.dumps({"objectType": "Group", "mbox": "mailto:team@example.org"})
    with pytest.raises(XapiError, match="not a Group"):
        parse_agent(group)


def test_since_offsets_and_unescaped_plus() -> None:
    assert parse_since("2024-05-01T14:00:00+02:00") == datetime(2024, 5, 1, 12, tzinfo=timezone.utc)
    assert parse_since("2024-05-01T14:00:00 02:00") == datetime(2024, 5, 1, 12, tzinfo=timezone.utc)
    assert parse_since("2024-05-01T12:00:00") == datetime(2024, 5, 1, 12, tzinfo=timezone.utc)
