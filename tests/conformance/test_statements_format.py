"""xAPI-Data 2.2 "Formatting Requirements" and 4.x "Special Data Types and Rules"."""

from __future__ import annotations

import json
import struct

import pytest

from tests.conformance.support import (
    ACTIVITY,
    all_statements,
    assert_accepted,
    assert_rejected,
    error_of,
    fetch,
    get,
    headers,
    new_id,
    store,
    stmt,
    with_path,
)

# --- 2.2.s2 ---------------------------------------------------------------------


async def test_2_2_s2_b2_each_property_is_used_no_more_than_one_time(client):
    """Data 2.2.s2.b2: "A Statement MUST use each property no more than one time."

    The LRS rejects a key that occurs twice in one object (the value would be
    ambiguous) and names it.
    """
    raw = (
        b'{"actor": {"mbox": "mailto:a@example.org"}, "verb": {"id": "http://example.org/v"},'
        b' "object": {"id": "http://example.org/a"}, "object": {"id": "http://example.org/b"}}'
    )
    await assert_rejected(client, None, raw=raw, fragment="object")


@pytest.mark.parametrize("missing", ["actor", "verb", "object"])
async def test_2_2_s2_b3_a_statement_must_use_actor_verb_and_object(client, missing):
    """Data 2.2.s2.b3: "A Statement MUST use "actor", "verb", and "object"."""
    await assert_rejected(client, stmt(**{missing: None}), fragment=missing)


async def test_2_2_s2_b4_properties_may_come_in_any_order(client):
    """Data 2.2.s2.b4: "A Statement MAY use its properties in any order."."""
    statement_id = new_id()
    raw = json.dumps(
        {"object": {"id": ACTIVITY}, "verb": {"id": "http://example.org/v"},
         "id": statement_id, "actor": {"mbox": "mailto:a@example.org", "objectType": "Agent"}}
    )
    response = await client.post(
        "/xapi/statements", data=raw,
        headers={**headers(), "Content-Type": "application/json"},
    )
    assert response.status == 200
    assert (await fetch(client, statement_id))["object"] == {"id": ACTIVITY}


async def test_2_2_s2_b5_no_different_serialisation_of_properties_on_return(client):
    """Data 2.2.s2.b5: "The LRS MUST NOT return a different serialisation of any properties
    except those listed as exceptions above."

    Everything the client sent (numbers as sent, unicode, extensions, property
    presence) comes back unchanged; only id/authority/stored/timestamp/version
    may be added.
    """
    sent = stmt(
        result={"score": {"raw": 5, "min": 0, "max": 10.0, "scaled": 0.5}, "success": True,
                "response": "Trả lời — ✓", "duration": "PT4H35M59.14S",
                "extensions": {"http://example.org/ext": {"nested": [1, 2.5, None, "x"]}}},
        context={"language": "vi-VN", "platform": "Example", "extensions": {"http://example.org/c": 0}},
    )
    [statement_id] = await store(client, sent)
    returned = await fetch(client, statement_id)
    for key in ("actor", "verb", "object", "result", "context"):
        assert returned[key] == sent[key], key
    assert json.dumps(returned["result"]["score"]["raw"]) == "5"
    assert json.dumps(returned["result"]["score"]["max"]) == "10.0"


# --- 2.2.s4 LRS Requirements -----------------------------------------------------


@pytest.mark.parametrize(
    "path",
    ["id", "actor.name", "verb.display", "object.definition", "result", "result.success",
     "context.registration", "timestamp", "result.score.raw", "object.definition.name"],
)
async def test_2_2_s4_b1_b1_reject_null_values(client, path):
    """Data 2.2.s4.b1.b1: "The LRS MUST reject Statements with any null values (except inside extensions)."."""
    body = stmt(result={"score": {"raw": 1}}, object={"id": ACTIVITY, "definition": {"name": {"en": "x"}}})
    await assert_rejected(client, with_path(body, path, None))


async def test_2_2_s4_b1_b1_null_values_inside_extensions_are_accepted(client):
    """Data 2.2.s4.b1.b1 (the exception): null values inside extensions are accepted."""
    body = stmt(result={"extensions": {"http://example.org/e": None}},
                context={"extensions": {"http://example.org/e": {"k": None}}})
    [statement_id] = await assert_accepted(client, body)
    assert (await fetch(client, statement_id))["result"]["extensions"] == {"http://example.org/e": None}


@pytest.mark.parametrize(
    ("path", "value"),
    [("result.score.scaled", "0.5"), ("result.score.raw", "5"), ("result.score.min", "0"),
     ("result.score.max", "10")],
)
async def test_2_2_s4_b1_b2_reject_strings_where_numbers_are_required(client, path, value):
    """Data 2.2.s4.b1.b2: "The LRS MUST reject Statements with strings where numbers are required,
    even if those strings contain numbers."."""
    await assert_rejected(client, with_path(stmt(), path, value), fragment=path.rsplit(".", 1)[-1])


@pytest.mark.parametrize(("path", "value"), [("result.success", "true"), ("result.completion", "false")])
async def test_2_2_s4_b1_b3_reject_strings_where_booleans_are_required(client, path, value):
    """Data 2.2.s4.b1.b3: "The LRS MUST reject Statements with strings where booleans are required,
    even if those strings contain booleans."."""
    await assert_rejected(client, with_path(stmt(), path, value), fragment=path.rsplit(".", 1)[-1])


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("actor.mbox", "learner@example.org"),
        ("actor.mbox", ""),
        ("id", "not-a-uuid"),
        ("id", ""),
        ("verb.id", ""),
        ("object.id", ""),
        ("context.registration", "1234"),
        ("timestamp", ""),
        ("actor.mbox_sha1sum", "xyz"),
        ("result.duration", ""),
    ],
)
async def test_2_2_s4_b1_b4_reject_non_format_following_values(client, path, value):
    """Data 2.2.s4.b1.b4: "The LRS MUST reject Statements with any non-format-following key or value,
    including the empty string, where a string with a particular format (such as mailto IRI, UUID,
    or IRI) is required."."""
    body = stmt()
    if path.startswith("actor.mbox_sha1sum"):
        body = with_path(body, "actor.mbox", ...)
    await assert_rejected(client, with_path(body, path, value))


@pytest.mark.parametrize(
    ("path", "key"),
    [("", "Actor"), ("actor", "objecttype"), ("verb", "ID"), ("object", "Definition"), ("", "Timestamp")],
)
async def test_2_2_s4_b1_b5_reject_keys_whose_case_does_not_match(client, path, key):
    """Data 2.2.s4.b1.b5: "The LRS MUST reject Statements where the case of a key does not match the
    case specified in this specification."."""
    body = stmt()
    target = body if not path else body[path]
    value = {"mbox": "mailto:x@example.org"} if key == "Actor" else "x"
    target[key] = value
    await assert_rejected(client, body, fragment=key)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("actor.objectType", "agent"),
        ("object.objectType", "activity"),
        ("object.definition.interactionType", "Choice"),
        ("object.definition.interactionType", "TRUE-FALSE"),
    ],
)
async def test_2_2_s4_b1_b6_reject_enumerated_values_in_another_case(client, path, value):
    """Data 2.2.s4.b1.b6: "The LRS MUST reject Statements where the case of a value restricted to
    enumerated values does not match an enumerated value given in this specification exactly."."""
    await assert_rejected(client, with_path(stmt(), path, value))


@pytest.mark.parametrize("path", ["extra", "actor.extra", "verb.extra", "object.extra", "object.definition.extra"])
async def test_2_2_s4_b1_b7_reject_keys_not_allowed(client, path):
    """Data 2.2.s4.b1.b7: "The LRS MUST reject Statements where a key or value is not allowed by this
    specification."."""
    await assert_rejected(client, with_path(stmt(), path, "x"), fragment="extra")


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("verb.id", "example.org/verbs/attempted"),
        ("object.id", "/activities/relative"),
        ("object.definition.type", "cmi.interaction"),
        ("object.definition.moreInfo", "www.example.org/info"),
        ("actor.openid", "toby.openid.example.org"),
    ],
)
async def test_2_2_s4_b1_b8_reject_iris_without_a_scheme(client, path, value):
    """Data 2.2.s4.b1.b8: "The LRS MUST reject Statements containing IRL or IRI values without a scheme."."""
    body = stmt()
    if path == "actor.openid":
        body = with_path(body, "actor.mbox", ...)
    await assert_rejected(client, with_path(body, path, value))


@pytest.mark.parametrize("tag", ["", "e", "-en", "en-", "en--US", "123", "en_US", "abcdefghi"])
async def test_2_2_s4_b2_language_map_keys_follow_rfc_5646(client, tag):
    """Data 2.2.s4.b2: "The LRS MUST at least validate that the sequence of token lengths for language
    map keys matches the RFC 5646 standard."."""
    await assert_rejected(client, with_path(stmt(), "verb.display", {tag: "attempted"}))


async def test_2_2_s4_b2_valid_language_tags_are_accepted(client):
    """Data 2.2.s4.b2 (positive side): well-formed RFC 5646 tags are accepted."""
    display = {"en": "a", "en-US": "b", "zh-Hans-CN": "c", "es-419": "d", "x-private": "e", "sgn-BE-FR": "f"}
    await assert_accepted(client, with_path(stmt(), "verb.display", display))


async def test_2_2_s4_b3_numbers_keep_at_least_float32_precision(client):
    """Data 2.2.s4.b3: "The LRS MUST process and store numbers with at least the precision of IEEE 754
    32-bit floating point numbers."."""
    values = [0.1234567, 3.4028234e38, 1.1754944e-38, -16777215, 0.30000001192092896]
    extensions = {f"http://example.org/n{i}": v for i, v in enumerate(values)}
    [statement_id] = await store(client, stmt(result={"score": {"raw": 0.1234567, "min": -1.5, "max": 1e30},
                                                      "extensions": extensions}))
    returned = await fetch(client, statement_id)
    f32 = lambda x: struct.unpack("f", struct.pack("f", x))[0]  # noqa: E731
    assert f32(returned["result"]["score"]["raw"]) == f32(0.1234567)
    for key, value in extensions.items():
        assert f32(returned["result"]["extensions"][key]) == f32(value)


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("agent", '{"mbox": "learner@example.org"}'),
        ("agent", '{"mbox": "mailto:a@example.org", "openid": "http://example.org/o"}'),
        ("verb", "not an iri"),
        ("activity", "example.org/no-scheme"),
        ("registration", "not-a-uuid"),
        ("since", "yesterday"),
        ("until", "2024-13-40T00:00:00Z"),
        ("statementId", "1234"),
    ],
)
async def test_2_2_s4_b4_parameter_values_are_validated_like_statement_values(client, param, value):
    """Data 2.2.s4.b4: "The LRS MUST validate parameter values to the same standards required for values
    of the same types in Statements."."""
    response = await get(client, {param: value})
    assert response.status == 400
    assert param in await error_of(response)


async def test_2_2_s4_b5_values_are_case_sensitive(client):
    """Data 2.2.s4.b5: "The LRS SHOULD treat all values as case sensitive unless specified otherwise."."""
    await store(client, stmt(verb={"id": "http://example.org/verbs/Passed"}))
    assert await all_statements(client, verb="http://example.org/verbs/passed") == []
    assert len(await all_statements(client, verb="http://example.org/verbs/Passed")) == 1


@pytest.mark.parametrize("path", ["result.extra", "result.score.extra", "context.extra",
                                  "context.contextActivities.extra", "actor.account"])
async def test_2_2_s4_b8_additional_properties_in_other_objects_are_rejected(client, path):
    """Data 2.2.s4.b8: "Additional properties SHOULD* NOT be added to Statements and other objects unless
    explicitly allowed by this specification and the LRS SHOULD* reject Statements containing such
    additional properties."."""
    body = stmt(result={"score": {"raw": 1}}, context={"contextActivities": {"parent": [{"id": ACTIVITY}]}})
    value = {"homePage": "http://example.org", "name": "n", "extra": 1} if path == "actor.account" else 1
    if path == "actor.account":
        body = with_path(body, "actor.mbox", ...)
    await assert_rejected(client, with_path(body, path, value), fragment="extra")


# --- 4.1 Extensions -----------------------------------------------------------


@pytest.mark.parametrize("where", ["result.extensions", "context.extensions", "object.definition.extensions"])
async def test_4_1_s3_b1_extension_keys_must_be_iris(client, where):
    """Data 4.1.s3.b1: "The keys of an extensions map MUST be IRIs."."""
    await assert_rejected(client, with_path(stmt(), where, {"not-an-iri": 1}))


async def test_4_1_s3_b2_statements_are_not_rejected_for_extension_values(client):
    """Data 4.1.s3.b2: "An LRS MUST NOT reject a Statement based on the values of the extensions map."."""
    values = [None, True, 0, -1.5, "", "x" * 10_000, [], {}, [[{"a": [None]}]],
              {"objectType": "Agent", "mbox": "not-a-mailto"}, {"id": "not an iri", "Actor": None}]
    extensions = {f"http://example.org/e{i}": v for i, v in enumerate(values)}
    [statement_id] = await assert_accepted(client, stmt(result={"extensions": extensions}))
    assert (await fetch(client, statement_id))["result"]["extensions"] == extensions


# --- 4.4 UUIDs / 4.5 Timestamps / 4.6 Durations ----------------------------------


@pytest.mark.parametrize(
    "value",
    ["{12345678-1234-5678-1234-567812345678}", "12345678123456781234567812345678",
     "urn:uuid:12345678-1234-5678-1234-567812345678", "12345678-1234-5678-1234-5678123456789"],
)
async def test_4_4_uuids_must_be_in_standard_string_form(client, value):
    """Data 4.4: "UUIDs MUST be in the standard string form."."""
    await assert_rejected(client, stmt(id=value))


@pytest.mark.parametrize(
    "value",
    ["2024-13-01T00:00:00Z", "2024-02-30T00:00:00Z", "2024-01-01", "yesterday", "2024-01-01 12:00:00Z",
     "2024-01-01T25:00:00Z", "01/31/2024T12:00:00Z"],
)
async def test_4_5_s1_b1_timestamps_must_be_iso_8601(client, value):
    """Data 4.5.s1.b1: "A Timestamp MUST be formatted according to ISO 8601."."""
    await assert_rejected(client, stmt(timestamp=value), fragment="timestamp")


async def test_4_5_s1_b3_timestamps_keep_millisecond_precision(client):
    """Data 4.5.s1.b3: "A Timestamp MUST preserve precision to at least milliseconds (3 decimal points
    beyond seconds)."."""
    from datetime import datetime

    [statement_id] = await store(client, stmt(timestamp="2024-01-31T12:00:00.123456Z"))
    returned = datetime.fromisoformat((await fetch(client, statement_id))["timestamp"].replace("Z", "+00:00"))
    assert returned.microsecond // 1000 == 123
    assert (returned.year, returned.second) == (2024, 0)


async def test_4_5_s1_b5_timestamps_keep_their_point_in_time(client):
    """Data 4.5.s1.b5: the LRS "MAY return the Timestamp using a different timezone ... so long as the
    point in time referenced is not affected."."""
    from datetime import datetime, timezone

    [statement_id] = await store(client, stmt(timestamp="2024-01-31T17:30:00.250+05:30"))
    returned = datetime.fromisoformat((await fetch(client, statement_id))["timestamp"].replace("Z", "+00:00"))
    assert returned == datetime(2024, 1, 31, 12, 0, 0, 250000, tzinfo=timezone.utc)


async def test_4_5_s1_b6_stored_is_returned_in_utc(client):
    """Data 4.5.s1.b6: "The LRS SHOULD* return the Timestamp in UTC timezone." (the LRS-set ones)."""
    [statement_id] = await store(client, stmt(timestamp=None))
    returned = await fetch(client, statement_id)
    for name in ("stored", "timestamp"):
        assert returned[name].endswith(("Z", "+00:00")), returned[name]


async def test_4_5_s1_b6_client_timestamps_are_returned_in_utc(client):
    """Data 4.5.s1.b6: "The LRS SHOULD* return the Timestamp in UTC timezone." (a client timestamp)."""
    [statement_id] = await store(client, stmt(timestamp="2024-01-31T17:30:00.250+05:30"))
    assert (await fetch(client, statement_id))["timestamp"].endswith(("Z", "+00:00"))


@pytest.mark.parametrize("value", ["P0003-01-29T04:35:59", "PT", "P", "1 hour", "PT1H30", "P4W1D", "-PT1H"])
async def test_4_6_s1_b1_durations_use_the_iso_8601_duration_format(client, value):
    """Data 4.6.s1.b1: "A Duration MUST be expressed using the format for Duration in ISO 8601:2004(E)
    section 4.4.3.2. The alternative format ... MUST NOT be used."."""
    await assert_rejected(client, stmt(result={"duration": value}), fragment="duration")


@pytest.mark.parametrize("value", ["PT4H35M59.14S", "P16559.14S", "P3Y1M29DT4H35M59.14S", "P3Y", "P4W", "PT0.0001S"])
async def test_4_6_durations_from_the_spec_are_accepted(client, value):
    """Data 4.6.s2 examples and 4.6.s1.b4: "On receiving a Duration with more than 0.01 second precision,
    the LRS SHOULD* NOT reject the request"."""
    [statement_id] = await assert_accepted(client, stmt(result={"duration": value}))
    assert (await fetch(client, statement_id))["result"]["duration"].startswith(value[:4])
