"""ETags, preconditions (Communication 3.1), content types and the POST merge (2.2)."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone

import pytest

from lrs.documents.concurrency import Preconditions, check_preconditions, etag_of, parse_etag_list
from lrs.documents.content import content_type_of, is_json_type, merge_json
from lrs.documents.model import Resource, StoredDocument
from lrs.documents.writes import plan_delete, plan_post, plan_put
from lrs.xapi.errors import XapiError

NOW = datetime(2024, 5, 1, tzinfo=timezone.utc)
PROFILES = (Resource.ACTIVITY_PROFILE, Resource.AGENT_PROFILE)


def stored(content: bytes, content_type: str = "application/json") -> StoredDocument:
    return StoredDocument(content, content_type, etag_of(content), NOW)


def test_etag_is_quoted_lowercase_sha1_of_the_bytes() -> None:
    content = b"\x00\xffbinary"
    assert etag_of(content) == '"' + hashlib.sha1(content).hexdigest() + '"'
    assert etag_of(content) == etag_of(content).lower()


def test_etag_list_parsing() -> None:
    assert parse_etag_list("*") is None
    assert parse_etag_list('"AbC", W/"def" , ghi') == frozenset({"abc", "def", "ghi"})


@pytest.mark.parametrize("resource", list(Resource))
@pytest.mark.parametrize("method", ["PUT", "POST", "DELETE"])
def test_if_match_mismatch_is_412(resource: Resource, method: str) -> None:
    with pytest.raises(XapiError) as info:
        check_preconditions(resource, method, etag_of(b"now"), Preconditions(if_match=etag_of(b"before")))
    assert info.value.status == 412


@pytest.mark.parametrize("resource", list(Resource))
def test_if_match_on_missing_document_is_412(resource: Resource) -> None:
    for value in ("*", etag_of(b"x")):
        with pytest.raises(XapiError) as info:
            check_preconditions(resource, "PUT", None, Preconditions(if_match=value))
        assert info.value.status == 412


@pytest.mark.parametrize("resource", list(Resource))
def test_if_match_current_etag_passes(resource: Resource) -> None:
    current = etag_of(b"now")
    check_preconditions(resource, "PUT", current, Preconditions(if_match=current))
    check_preconditions(resource, "PUT", current, Preconditions(if_match=current.strip('"').upper()))
    check_preconditions(resource, "PUT", current, Preconditions(if_match="*"))


@pytest.mark.parametrize("resource", list(Resource))
def test_if_none_match_star(resource: Resource) -> None:
    check_preconditions(resource, "PUT", None, Preconditions(if_none_match="*"))
    with pytest.raises(XapiError) as info:
        check_preconditions(resource, "PUT", etag_of(b"x"), Preconditions(if_none_match="*"))
    assert info.value.status == 412


@pytest.mark.parametrize("resource", PROFILES)
def test_put_without_headers_on_existing_profile_is_409(resource: Resource) -> None:
    with pytest.raises(XapiError) as info:
        check_preconditions(resource, "PUT", etag_of(b"x"), Preconditions())
    assert info.value.status == 409
    assert "If-Match" in info.value.message and "current state" in info.value.message


@pytest.mark.parametrize("resource", PROFILES)
def test_profile_writes_that_need_no_headers(resource: Resource) -> None:
    check_preconditions(resource, "PUT", None, Preconditions())  # creating
    check_preconditions(resource, "POST", etag_of(b"x"), Preconditions())  # SHOULD* only
    check_preconditions(resource, "DELETE", etag_of(b"x"), Preconditions())


def test_state_put_without_headers_replaces_in_1_0_3() -> None:
    version = plan_put(Resource.STATE, stored(b"{}"), b"new", "text/plain", Preconditions(), "1.0.3")
    assert version.content == b"new" and version.etag == etag_of(b"new")


def test_state_put_without_headers_to_an_existing_document_is_409_in_2_0() -> None:
    with pytest.raises(XapiError) as info:
        plan_put(Resource.STATE, stored(b"{}"), b"new", "text/plain", Preconditions(), "2.0.0")
    assert info.value.status == 409 and "If-Match" in info.value.message
    assert plan_put(Resource.STATE, None, b"new", "text/plain", Preconditions(), "2.0.0").content == b"new"


@pytest.mark.parametrize("resource", PROFILES)
def test_profile_put_without_headers_in_1_0_3(resource: Resource) -> None:
    with pytest.raises(XapiError) as info:
        check_preconditions(resource, "PUT", None, Preconditions(), "1.0.3")
    assert info.value.status == 400 and "If-None-Match" in info.value.message
    with pytest.raises(XapiError) as info:
        check_preconditions(resource, "PUT", etag_of(b"x"), Preconditions(), "1.0.3")
    assert info.value.status == 409
    check_preconditions(resource, "PUT", None, Preconditions(if_none_match="*"), "1.0.3")
    check_preconditions(resource, "POST", None, Preconditions(), "1.0.3")  # only PUT must send one


def test_content_types() -> None:
    assert content_type_of(None) == "application/octet-stream"
    assert content_type_of(" image/png ") == "image/png"
    assert is_json_type("Application/JSON; charset=utf-8")
    assert not is_json_type("application/jsonp")


def test_put_json_must_be_json_other_types_are_kept_as_bytes() -> None:
    with pytest.raises(XapiError) as info:
        plan_put(Resource.STATE, None, b"{nope", "application/json", Preconditions())
    assert info.value.status == 400
    raw = bytes(range(256))
    version = plan_put(Resource.AGENT_PROFILE, None, raw, "application/octet-stream", Preconditions())
    assert version.content == raw and version.content_type == "application/octet-stream"


def test_merge_example_from_the_spec() -> None:
    existing = stored(b'{"x": "foo", "y": "bar"}')
    merged, content_type = merge_json(existing, b'{"x": "bash", "z": "faz"}', "application/json")
    assert json.loads(merged) == {"x": "bash", "y": "bar", "z": "faz"}
    assert content_type == "application/json"


def test_merge_replaces_top_level_objects_whole() -> None:
    existing = stored(b'{"o": {"a": 1, "b": 2}}')
    merged, _ = merge_json(existing, b'{"o": {"c": 3}}', "application/json")
    assert json.loads(merged) == {"o": {"c": 3}}


def test_post_without_existing_document_stores_posted_bytes() -> None:
    posted = b'{ "spaced" :  true }'
    merged, content_type = merge_json(None, posted, "application/json; charset=utf-8")
    assert merged == posted and content_type == "application/json; charset=utf-8"


@pytest.mark.parametrize(
    "existing, posted, posted_type",
    [
        (None, b'{"a": 1}', "text/plain"),
        (None, b"[1, 2]", "application/json"),
        (None, b"not json", "application/json"),
        (b'{"a": 1}', b"[1]", "application/json"),
        (b"[1]", b'{"a": 1}', "application/json"),
        (b"not json", b'{"a": 1}', "application/json"),
    ],
)
def test_merge_errors_are_400(existing, posted, posted_type) -> None:
    current = None if existing is None else stored(existing)
    with pytest.raises(XapiError) as info:
        merge_json(current, posted, posted_type)
    assert info.value.status == 400


def test_merge_into_non_json_document_is_400() -> None:
    with pytest.raises(XapiError, match="not application/json"):
        merge_json(stored(b'{"a": 1}', "text/plain"), b'{"b": 2}', "application/json")


def test_plan_post_checks_preconditions_before_merging() -> None:
    with pytest.raises(XapiError) as info:
        plan_post(Resource.STATE, stored(b'{"a":1}'), b'{"b":2}', "application/json",
                  Preconditions(if_match=etag_of(b"old")))
    assert info.value.status == 412
    version = plan_post(Resource.STATE, stored(b'{"a":1}'), b'{"b":2}', "application/json", Preconditions())
    assert json.loads(version.content) == {"a": 1, "b": 2} and version.etag == etag_of(version.content)


def test_plan_delete() -> None:
    assert plan_delete(Resource.STATE, None, Preconditions()) is False
    assert plan_delete(Resource.ACTIVITY_PROFILE, stored(b"x"), Preconditions()) is True
    with pytest.raises(XapiError) as info:
        plan_delete(Resource.ACTIVITY_PROFILE, stored(b"x"), Preconditions(if_match=etag_of(b"y")))
    assert info.value.status == 412


def test_merging_a_posted_document_that_is_not_json_names_its_content_type() -> None:
    with pytest.raises(XapiError) as info:
        merge_json(None, b'{"a": 1}', "text/plain")
    assert info.value.status == 400 and info.value.path == "Content-Type", info.value
