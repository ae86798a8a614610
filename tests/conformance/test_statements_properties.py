"""xAPI-Data 2.3 "Statement Lifecycle" and 2.4 "Statement Properties"."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from tests.conformance.support import (
    ACTIVITY,
    all_statements,
    assert_accepted,
    assert_rejected,
    fetch,
    get,
    new_id,
    post,
    store,
    stmt,
    with_path,
)

VOIDED = "http://adlnet.gov/expapi/verbs/voided"
MEMBERS = [
    {"objectType": "Agent", "mbox": "mailto:andrew@example.org"},
    {"objectType": "Agent", "openid": "http://aaron.openid.example.org"},
]


def voiding(target: str) -> dict:
    return stmt(actor={"objectType": "Agent", "mbox": "mailto:admin@example.org"},
                verb={"id": VOIDED, "display": {"en-US": "voided"}},
                object={"objectType": "StatementRef", "id": target})


def when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# --- 2.3.1 Statement Immutability and comparison --------------------------------


async def test_2_3_1_s9_b1_differences_from_immutability_exceptions_are_ignored(client):
    """Data 2.3.1.s9.b1: "Differences which could have been caused by exceptions to Statement
    immutability MUST be ignored." (authority, stored, timestamp serialisation, Verb display,
    Activity definition, Group member order, case-insensitive values)."""
    statement_id = new_id()
    first = stmt(id=statement_id, timestamp="2024-01-31T12:00:00.000Z",
                 actor={"objectType": "Group", "member": MEMBERS},
                 object={"id": ACTIVITY, "definition": {"name": {"en": "One"}}})
    assert (await post(client, first)).status == 200
    again = stmt(id=statement_id, timestamp="2024-01-31T13:00:00.000+01:00",
                 actor={"objectType": "Group", "member": list(reversed(MEMBERS))},
                 verb={"id": first["verb"]["id"], "display": {"en-GB": "attempted (again)"}},
                 object={"id": ACTIVITY, "definition": {"name": {"en": "Renamed"}}},
                 authority={"objectType": "Agent", "mbox": "mailto:someone@example.org"},
                 stored="2000-01-01T00:00:00Z")
    response = await post(client, again)
    assert response.status in (200, 204), await response.text()
    stored = await all_statements(client)
    assert [s["id"] for s in stored] == [statement_id]
    assert stored[0]["object"]["definition"] == {"name": {"en": "One"}}


async def test_2_3_1_s9_b2_other_differences_are_not_ignored(client):
    """Data 2.3.1.s9.b2: "Differences relating to a different serialisation of any properties not
    listed as exceptions MUST not be ignored." (the second Statement is a 409)."""
    statement_id = new_id()
    await store(client, stmt(id=statement_id, result={"success": True}))
    response = await post(client, stmt(id=statement_id, result={"success": False}))
    assert response.status == 409
    assert (await fetch(client, statement_id))["result"] == {"success": True}


async def test_2_3_1_b8_result_duration_is_compared_as_a_string(client):
    """Data 2.3.1.b8: "the Result Duration is considered a string for purposes of Statement comparison."
    (PT1H and PT60M are different Statements)."""
    statement_id = new_id()
    await store(client, stmt(id=statement_id, result={"duration": "PT1H"}))
    response = await post(client, stmt(id=statement_id, result={"duration": "PT60M"}))
    assert response.status == 409
    assert (await fetch(client, statement_id))["result"]["duration"] == "PT1H"


# --- 2.3.2 Voiding -----------------------------------------------------------------


@pytest.mark.parametrize("obj", [{"objectType": "Activity", "id": ACTIVITY}, {"id": ACTIVITY},
                                 {"objectType": "Agent", "mbox": "mailto:a@example.org"}])
async def test_2_3_2_s2_b1_a_voiding_statement_object_must_be_a_statementref(client, obj):
    """Data 2.3.2.s2.b1: "When issuing a Statement that voids another, the Object of that voiding
    Statement MUST have the "objectType" property set to StatementRef."."""
    await assert_rejected(client, with_path(voiding(new_id()), "object", obj), fragment="StatementRef")


async def test_2_3_2_s2_b2_a_voiding_statement_must_name_the_voided_id(client):
    """Data 2.3.2.s2.b2: "the Object of that voiding Statement MUST specify the id of the
    Statement-to-be-voided by its "id" property."."""
    await assert_rejected(client, with_path(voiding(new_id()), "object", {"objectType": "StatementRef"}),
                          fragment="id")


async def test_2_3_2_s2_b3_a_statement_is_voided_iff_a_voiding_statement_targets_it(client):
    """Data 2.3.2.s2.b3: "an LRS MUST consider a Statement it contains voided if and only if the
    Statement is not itself a voiding Statement and the LRS also contains a voiding Statement
    referring to the first Statement."."""
    [target] = await store(client, stmt())
    [voider] = await store(client, voiding(target))
    assert (await get(client, {"statementId": target})).status == 404
    assert (await fetch(client, target, voided=True))["id"] == target
    # A voiding Statement cannot itself be voided, whatever the LRS answers to the attempt.
    await post(client, voiding(voider))
    assert (await fetch(client, voider))["id"] == voider
    assert (await get(client, {"voidedStatementId": voider})).status == 404


async def test_2_3_2_s2_b5_voiding_an_unknown_statement_is_not_rejected(client):
    """Data 2.3.2.s2.b5: "the LRS SHOULD NOT* reject the request on the grounds of the Object of that
    voiding Statement not being present."."""
    await assert_accepted(client, voiding(new_id()))


async def test_2_3_2_voiding_after_the_fact_voids_a_statement_stored_later(client):
    """Data 2.3.2.s2.b3 with the target arriving after the voiding Statement: still voided."""
    target = new_id()
    await store(client, voiding(target))
    await store(client, stmt(id=target))
    assert (await get(client, {"statementId": target})).status == 404
    assert (await fetch(client, target, voided=True))["id"] == target


# --- 2.4.1 id -------------------------------------------------------------------------


async def test_2_4_1_s2_b1_the_lrs_generates_missing_ids(client):
    """Data 2.4.1.s2.b1: "Statement ids MUST be generated by the LRS if a Statement is received
    without an id." (UUIDs in standard string form)."""
    ids = await store(client, stmt(), stmt())
    assert len(set(ids)) == 2
    for statement_id in ids:
        assert str(uuid.UUID(statement_id)) == statement_id
        assert (await fetch(client, statement_id))["id"] == statement_id


async def test_2_4_1_s1_a_given_id_is_kept(client):
    """Data 2.4.1.s1 and 2.4.s1 table: the id set by the Learning Record Provider is the Statement's id."""
    statement_id = new_id()
    assert await store(client, stmt(id=statement_id)) == [statement_id]


# --- 2.4.2 Actor ------------------------------------------------------------------------


async def test_2_4_2_1_s2_b1_an_agent_must_have_an_ifi(client):
    """Data 2.4.2.1.s2.b1: "An Agent MUST be identified by one (1) of the four types of Inverse
    Functional Identifiers"."""
    await assert_rejected(client, stmt(actor={"objectType": "Agent", "name": "No Identifier"}))


@pytest.mark.parametrize(
    "extra",
    [{"openid": "http://example.org/openid"}, {"mbox_sha1sum": "ebd31e95054c018b10727ccffd2ef2ec3a016ee9"},
     {"account": {"homePage": "http://example.org", "name": "n"}}],
)
async def test_2_4_2_1_s2_b2_an_agent_must_not_have_two_ifis(client, extra):
    """Data 2.4.2.1.s2.b2: "An Agent MUST NOT include more than one (1) Inverse Functional Identifier"."""
    await assert_rejected(client, stmt(actor={"objectType": "Agent", "mbox": "mailto:a@example.org", **extra}))


@pytest.mark.parametrize(
    "ifi",
    [{"mbox": "mailto:a@example.org"}, {"mbox_sha1sum": "ebd31e95054c018b10727ccffd2ef2ec3a016ee9"},
     {"openid": "http://toby.openid.example.org/"}, {"account": {"homePage": "http://www.example.com", "name": "1625378"}}],
)
async def test_2_4_2_3_each_inverse_functional_identifier_is_accepted(client, ifi):
    """Data 2.4.2.3.s3 table: mbox, mbox_sha1sum, openid and account each identify an Agent."""
    [statement_id] = await assert_accepted(client, stmt(actor=ifi))
    assert (await fetch(client, statement_id))["actor"] == ifi


@pytest.mark.parametrize("account", [{"homePage": "http://example.org"}, {"name": "n"},
                                     {"homePage": "example.org", "name": "n"}])
async def test_2_4_2_4_account_needs_a_homepage_irl_and_a_name(client, account):
    """Data 2.4.2.4.s2 table: homePage (IRL) and name are Required in an Account Object."""
    await assert_rejected(client, stmt(actor={"account": account}))


async def test_2_4_2_2_s4_b1_an_anonymous_group_must_list_members(client):
    """Data 2.4.2.2.s4.b1: "An Anonymous Group MUST include a "member" property listing constituent
    Agents."."""
    await assert_rejected(client, stmt(actor={"objectType": "Group", "name": "Nobody"}), fragment="member")


async def test_2_4_2_2_s4_b2_an_anonymous_group_must_not_contain_groups(client):
    """Data 2.4.2.2.s4.b2: "An Anonymous Group MUST NOT contain Group Objects in the "member"
    identifiers."."""
    inner = {"objectType": "Group", "member": MEMBERS}
    await assert_rejected(client, stmt(actor={"objectType": "Group", "member": [MEMBERS[0], inner]}))


async def test_2_4_2_2_s5_b1_an_identified_group_has_exactly_one_ifi(client):
    """Data 2.4.2.2.s5.b1: "An Identified Group MUST include exactly one (1) Inverse Functional
    Identifier."."""
    await assert_rejected(client, stmt(actor={"objectType": "Group", "mbox": "mailto:team@example.org",
                                              "openid": "http://example.org/team"}))


async def test_2_4_2_2_s5_b2_an_identified_group_must_not_contain_groups(client):
    """Data 2.4.2.2.s5.b2: "An Identified Group MUST NOT contain Group Objects in the "member"
    property."."""
    inner = {"objectType": "Group", "mbox": "mailto:inner@example.org"}
    await assert_rejected(client, stmt(actor={"objectType": "Group", "mbox": "mailto:team@example.org",
                                              "member": [inner]}))


async def test_2_4_2_2_s5_b4_an_identified_group_may_list_members(client):
    """Data 2.4.2.2.s5.b4 and s3.b3: an Identified Group MAY include a complete or partial "member" list."""
    actor = {"objectType": "Group", "name": "Example Group",
             "account": {"homePage": "http://example.com/homePage", "name": "GroupAccount"}, "member": MEMBERS}
    [statement_id] = await assert_accepted(client, stmt(actor=actor))
    returned = (await fetch(client, statement_id))["actor"]
    key = lambda m: json.dumps(m, sort_keys=True)  # noqa: E731
    assert sorted(map(key, returned["member"])) == sorted(map(key, MEMBERS))


async def test_2_4_2_2_a_group_requires_its_object_type(client):
    """Data 2.4.2.2.s2 tables: objectType "Group" is Required; without it "member" is not allowed."""
    await assert_rejected(client, stmt(actor={"mbox": "mailto:team@example.org", "member": MEMBERS}),
                          fragment="member")


# --- 2.4.3 Verb -------------------------------------------------------------------------


@pytest.mark.parametrize("verb", [{"display": {"en-US": "attempted"}}, {"id": "attempted"}, "http://example.org/v"])
async def test_2_4_3_s3_a_verb_needs_an_iri_id(client, verb):
    """Data 2.4.3.s3 table: a Verb's "id" is a Required IRI."""
    await assert_rejected(client, stmt(verb=verb))


async def test_2_4_3_s6_b1_format_exact_returns_display_as_included_or_omitted(client):
    """Data 2.4.3.s6.b1: "When queried for Statements with a Format of exact, the LRS MUST return the
    "display" property exactly as included (or omitted) within the Statement."."""
    display = {"en-US": "attempted", "es": "intentó", "vi-VN": "đã thử"}
    [with_display, without] = await store(
        client, stmt(verb={"id": "http://example.org/v", "display": display}), stmt(verb={"id": "http://example.org/v"})
    )
    assert (await fetch(client, with_display, format="exact"))["verb"] == {"id": "http://example.org/v", "display": display}
    assert (await fetch(client, without, format="exact"))["verb"] == {"id": "http://example.org/v"}


async def test_2_4_3_s6_b2_format_ids_leaves_out_display(client):
    """Data 2.4.3.s6.b2: "When queried for Statements with a Format of ids, the LRS SHOULD* NOT include
    the "display" property."."""
    [statement_id] = await store(client, stmt())
    assert (await fetch(client, statement_id, format="ids"))["verb"] == {"id": stmt()["verb"]["id"]}
    [listed] = await all_statements(client, format="ids")
    assert "display" not in listed["verb"]


async def test_2_4_3_s6_b3_format_canonical_returns_one_display(client):
    """Data 2.4.3.s6.b3: "When queried for Statements with a Format of canonical, the LRS SHOULD* return
    a canonical Display for that Verb." (one language, chosen by Accept-Language)."""
    [statement_id] = await store(client, stmt(verb={"id": "http://example.org/v",
                                                    "display": {"en-US": "attempted", "es": "intentó"}}))
    response = await get(client, {"statementId": statement_id, "format": "canonical"},
                         extra={"Accept-Language": "es;q=0.9, en;q=0.5"})
    assert (await response.json())["verb"]["display"] == {"es": "intentó"}


# --- 2.4.4 Object ---------------------------------------------------------------------------


async def test_2_4_4_s2_object_type_defaults_to_activity(client):
    """Data 2.4.4.s2: "If not specified, the objectType is assumed to be Activity." (and returned as sent)."""
    [statement_id] = await assert_accepted(client, stmt(object={"id": ACTIVITY}))
    assert (await fetch(client, statement_id))["object"] == {"id": ACTIVITY}
    assert len(await all_statements(client, activity=ACTIVITY)) == 1


async def test_2_4_4_1_an_activity_needs_an_id(client):
    """Data 2.4.4.1.s1 table: an Activity's "id" is Required."""
    await assert_rejected(client, stmt(object={"objectType": "Activity", "definition": {"name": {"en": "x"}}}),
                          fragment="id")


@pytest.mark.parametrize("kind", ["choices", "scale", "source", "target", "steps"])
async def test_2_4_4_1_s16_b1_interaction_component_ids_are_distinct(client, kind):
    """Data 2.4.4.1.s16.b1: "Within an array of interaction components, all id values MUST be distinct."."""
    interaction = {"choices": "choice", "scale": "likert", "source": "matching", "target": "matching",
                   "steps": "performance"}[kind]
    definition = {"interactionType": interaction, kind: [{"id": "a"}, {"id": "b"}, {"id": "a"}]}
    await assert_rejected(client, stmt(object={"id": ACTIVITY, "definition": definition}), fragment=kind)


async def test_2_4_4_1_s13_b1_interaction_activities_have_a_valid_interaction_type(client):
    """Data 2.4.4.1.s13.b1: "Interaction Activities MUST have a valid interactionType."."""
    definition = {"interactionType": "essay", "correctResponsesPattern": ["x"]}
    await assert_rejected(client, stmt(object={"id": ACTIVITY, "definition": definition}), fragment="interactionType")


APPENDIX_C = {
    "true-false": {"interactionType": "true-false", "correctResponsesPattern": ["true"]},
    "choice": {"interactionType": "choice", "correctResponsesPattern": ["golf[,]tetris"],
               "choices": [{"id": "golf", "description": {"en-US": "Golf Example"}},
                           {"id": "tetris", "description": {"en-US": "Tetris Example"}}]},
    "fill-in": {"interactionType": "fill-in", "correctResponsesPattern": ["Bob's your uncle"]},
    "long-fill-in": {"interactionType": "long-fill-in",
                     "correctResponsesPattern": ["{case_matters=false}{lang=en}To store and provide access."]},
    "likert": {"interactionType": "likert", "correctResponsesPattern": ["likert_3"],
               "scale": [{"id": "likert_0", "description": {"en-US": "It's OK"}}, {"id": "likert_3"}]},
    "matching": {"interactionType": "matching", "correctResponsesPattern": ["ben[.]3[,]chris[.]2"],
                 "source": [{"id": "ben"}, {"id": "chris"}], "target": [{"id": "2"}, {"id": "3"}]},
    "performance": {"interactionType": "performance", "correctResponsesPattern": ["pong[.]1:[,]dg[.]:10"],
                    "steps": [{"id": "pong"}, {"id": "dg"}]},
    "sequencing": {"interactionType": "sequencing", "correctResponsesPattern": ["tim[,]mike"],
                   "choices": [{"id": "tim"}, {"id": "mike"}]},
    "numeric": {"interactionType": "numeric", "correctResponsesPattern": ["4[:]"]},
    "other": {"interactionType": "other", "correctResponsesPattern": ["(35.937432,-86.868896)"]},
}


@pytest.mark.parametrize("kind", sorted(APPENDIX_C))
async def test_2_4_4_1_appendix_c_interaction_definitions_are_accepted(client, kind):
    """Data 2.4.4.1.s8 and Appendix C: each interaction type's example definition is a valid Statement."""
    definition = {"type": "http://adlnet.gov/expapi/activities/cmi.interaction",
                  "description": {"en-US": kind}, **APPENDIX_C[kind]}
    [statement_id] = await assert_accepted(client, stmt(object={"id": ACTIVITY, "definition": definition}))
    assert (await fetch(client, statement_id))["object"]["definition"] == definition


async def test_2_4_4_1_s13_b4_b5_no_limits_on_response_patterns(client):
    """Data 2.4.4.1.s13.b4/b5: "The LRS SHOULD* NOT enforce character limits relating to response
    patterns." and "SHOULD* NOT limit the length of the correctResponsesPattern array"."""
    definition = {"interactionType": "long-fill-in", "correctResponsesPattern": ["x" * 5000] * 300}
    await assert_accepted(client, stmt(object={"id": ACTIVITY, "definition": definition},
                                       result={"response": "y" * 20_000}))


async def test_2_4_4_1_s4_b2_one_activity_id_is_one_activity(client):
    """Data 2.4.4.1.s4.b2: "An LRS MUST NOT treat references to the same Activity id as references to
    different Activities." (both Statements match the one id, whatever their definitions)."""
    await store(client, stmt(object={"id": ACTIVITY, "definition": {"name": {"en": "One"}}}),
                stmt(object={"id": ACTIVITY, "definition": {"name": {"en": "Two"}}}))
    assert len(await all_statements(client, activity=ACTIVITY)) == 2


@pytest.mark.parametrize("agent", [{"mbox": "mailto:a@example.org"}, {"name": "x", "mbox": "mailto:a@example.org"}])
async def test_2_4_4_2_s1_b1_agent_objects_specify_object_type(client, agent):
    """Data 2.4.4.2.s1.b1: "Statements that specify an Agent or Group as an Object MUST specify an
    'objectType' property."."""
    await assert_rejected(client, stmt(object=agent))


async def test_2_4_4_2_agent_and_group_objects_are_accepted(client):
    """Data 2.4.4.2 / Appendix B: Agents and Groups with objectType are valid Objects."""
    await assert_accepted(client, stmt(object={"objectType": "Agent", "mbox": "mailto:andrew@example.co.uk"}))
    await assert_accepted(client, stmt(object={"objectType": "Group", "member": MEMBERS}))


async def test_2_4_4_3_s4_b1_a_statement_reference_needs_its_object_type(client):
    """Data 2.4.4.3.s4.b1: "A Statement Reference MUST specify an "objectType" property with the value
    StatementRef." (without it, a UUID id is an Activity id without a scheme)."""
    await assert_rejected(client, stmt(object={"id": new_id()}))


@pytest.mark.parametrize("bad_id", ["not-a-uuid", "", ACTIVITY])
async def test_2_4_4_3_s4_b2_a_statement_reference_id_is_a_uuid(client, bad_id):
    """Data 2.4.4.3.s4.b2: "A Statement Reference MUST set the "id" property to the UUID of a Statement."."""
    await assert_rejected(client, stmt(object={"objectType": "StatementRef", "id": bad_id}))


async def test_2_4_4_3_s4_b2_the_referenced_statement_need_not_exist(client):
    """Data 2.4.4.3.s4.b2: "There is no requirement for the LRS to validate that the UUID matches a
    Statement that exists."."""
    await assert_accepted(client, stmt(object={"objectType": "StatementRef", "id": new_id()}))


SUB = {"objectType": "SubStatement", "actor": {"objectType": "Agent", "mbox": "mailto:agent@example.com"},
       "verb": {"id": "http://example.com/confirmed", "display": {"en": "confirmed"}},
       "object": {"objectType": "StatementRef", "id": "9e13cefd-53d3-4eac-b5ed-2cf6693903bb"}}


async def test_2_4_4_3_appendix_b_substatement_is_accepted_and_returned(client):
    """Data 2.4.4.3.s6 and Appendix B: a SubStatement Object is stored and returned as sent."""
    [statement_id] = await assert_accepted(client, stmt(object=SUB))
    assert (await fetch(client, statement_id))["object"] == SUB


@pytest.mark.parametrize(("path", "value"), [("actor", {"name": "no ifi"}), ("verb", {"id": "nope"}),
                                             ("object", {"objectType": "StatementRef"}), ("timestamp", "soon")])
async def test_2_4_4_3_s8_b2_a_substatement_is_validated_as_a_statement(client, path, value):
    """Data 2.4.4.3.s8.b2: "A SubStatement MUST be validated as a Statement in addition to other
    SubStatement requirements."."""
    await assert_rejected(client, stmt(object=with_path(SUB, path, value)))


@pytest.mark.parametrize(("name", "value"), [("id", "9e13cefd-53d3-4eac-b5ed-2cf6693903bc"),
                                             ("stored", "2024-01-01T00:00:00Z"), ("version", "1.0.0"),
                                             ("authority", {"mbox": "mailto:a@example.org"})])
async def test_2_4_4_3_s8_b3_a_substatement_has_no_id_stored_version_or_authority(client, name, value):
    """Data 2.4.4.3.s8.b3: "A SubStatement MUST NOT have the "id", "stored", "version" or "authority"
    properties."."""
    await assert_rejected(client, stmt(object={**SUB, name: value}), fragment=name)


async def test_2_4_4_3_s8_b4_a_substatement_cannot_be_nested(client):
    """Data 2.4.4.3.s8.b4: "A SubStatement MUST NOT contain a SubStatement of its own, i.e., cannot be
    nested."."""
    await assert_rejected(client, stmt(object={**SUB, "object": dict(SUB)}), fragment="SubStatement")


async def test_2_4_7_s3_b5_a_substatement_may_have_a_future_timestamp(client):
    """Data 2.4.7.s3.b5: "A SubStatement MAY have a "timestamp" property that is in the future."."""
    await assert_accepted(client, stmt(object={**SUB, "timestamp": "2999-01-01T00:00:00Z"}))


# --- 2.4.5 Result -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "score",
    [{"scaled": 1.5}, {"scaled": -1.01}, {"raw": 11, "min": 0, "max": 10}, {"raw": -1, "min": 0},
     {"min": 10, "max": 10}, {"min": 10, "max": 1}],
)
async def test_2_4_5_1_score_values_keep_their_ranges(client, score):
    """Data 2.4.5.1.s2 table: scaled is between -1 and 1 inclusive, raw between min and max inclusive,
    min less than max."""
    await assert_rejected(client, stmt(result={"score": score}))


@pytest.mark.parametrize("score", [{"scaled": 1}, {"scaled": -1}, {"raw": 0, "min": 0, "max": 10},
                                   {"raw": 10, "min": 0, "max": 10}, {"raw": -5}, {"scaled": 0.95}])
async def test_2_4_5_1_scores_at_the_edges_are_accepted(client, score):
    """Data 2.4.5.1.s2 table: the bounds are inclusive."""
    await assert_accepted(client, stmt(result={"score": score}))


@pytest.mark.parametrize(("name", "value"), [("success", 1), ("completion", "yes"), ("response", 5),
                                             ("duration", 3600), ("score", 0.5)])
async def test_2_4_5_s2_result_properties_have_their_types(client, name, value):
    """Data 2.4.5.s2 table: success/completion are Boolean, response a String, duration a Duration,
    score an Object."""
    await assert_rejected(client, stmt(result={name: value}), fragment=name)


# --- 2.4.6 Context --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["revision", "platform"])
@pytest.mark.parametrize("obj", [{"objectType": "Agent", "mbox": "mailto:a@example.org"},
                                 {"objectType": "StatementRef", "id": "9e13cefd-53d3-4eac-b5ed-2cf6693903bb"}])
async def test_2_4_6_s4_b1_b2_revision_and_platform_only_with_an_activity_object(client, name, obj):
    """Data 2.4.6.s4.b1/b2: "The "revision" property MUST only be used if the Statement's Object is an
    Activity." and the same for "platform"."""
    await assert_rejected(client, stmt(object=obj, context={name: "1"}), fragment=name)


async def test_2_4_6_s3_context_properties_are_accepted_and_returned(client):
    """Data 2.4.6.s3 table: every Context property, as in Appendix A's long example."""
    context = {
        "registration": "ec531277-b57b-4c15-8d91-d292c5b2b8f7",
        "instructor": {"name": "Andrew Downes", "account": {"homePage": "http://www.example.com", "name": "13936749"},
                       "objectType": "Agent"},
        "team": {"name": "Team PB", "mbox": "mailto:teampb@example.com", "objectType": "Group"},
        "contextActivities": {"parent": [{"id": "http://www.example.com/meetings/series/267", "objectType": "Activity"}],
                              "grouping": [{"id": "http://www.example.com/g"}],
                              "category": [{"id": "http://www.example.com/c"}],
                              "other": [{"id": "http://www.example.com/o1"}, {"id": "http://www.example.com/o2"}]},
        "revision": "r2", "platform": "Example virtual meeting software", "language": "tlh",
        "statement": {"objectType": "StatementRef", "id": "6690e6c9-3ef0-4ed3-8b37-7f3964730bee"},
        "extensions": {"http://example.com/ext": {"a": 1}},
    }
    [statement_id] = await assert_accepted(client, stmt(context=context))
    assert (await fetch(client, statement_id))["context"] == context


@pytest.mark.parametrize(("name", "value"), [
    ("team", {"mbox": "mailto:team@example.org"}),
    ("instructor", {"name": "no ifi"}),
    ("registration", "not-a-uuid"),
    ("language", "not a tag"),
    ("statement", {"id": "6690e6c9-3ef0-4ed3-8b37-7f3964730bee"}),
    ("statement", {"objectType": "StatementRef", "id": "x"}),
])
async def test_2_4_6_s3_context_properties_have_their_types(client, name, value):
    """Data 2.4.6.s3 table: registration UUID, instructor Agent/Group, team Group, language RFC 5646,
    statement a Statement Reference."""
    await assert_rejected(client, stmt(context={name: value}), fragment=name)


async def test_2_4_6_2_s4_b1_context_activity_keys_are_parent_grouping_category_other(client):
    """Data 2.4.6.2.s4.b1: "Every key in the contextActivities Object MUST be one of parent, grouping,
    category, or other."."""
    await assert_rejected(client, stmt(context={"contextActivities": {"sibling": [{"id": ACTIVITY}]}}),
                          fragment="sibling")


@pytest.mark.parametrize("value", [ACTIVITY, [ACTIVITY], {"name": "no id"}, [{"id": "not an iri"}], 5])
async def test_2_4_6_2_s4_b2_context_activity_values_are_activities(client, value):
    """Data 2.4.6.2.s4.b2: "Every value in the contextActivities Object MUST be either a single Activity
    Object or an array of Activity Objects."."""
    await assert_rejected(client, stmt(context={"contextActivities": {"parent": value}}))


async def test_2_4_6_2_s4_b3_b4_context_activities_are_returned_as_arrays(client):
    """Data 2.4.6.2.s4.b3/b4: "The LRS MUST return every value in the contextActivities Object as an
    array, even if it arrived as a single Activity Object." and "MUST return single Activity Objects as
    an array of length one containing the same Activity."."""
    single = {"id": "http://example.org/parent", "objectType": "Activity"}
    sub = {**SUB, "object": {"id": ACTIVITY}, "context": {"contextActivities": {"grouping": single}}}
    [statement_id] = await store(client, stmt(context={"contextActivities": {"parent": single, "other": [single]}}),)
    [sub_id] = await store(client, stmt(object=sub))
    for fmt in ("exact", "ids", "canonical"):
        # format=ids keeps only the id of an Activity (Communication 2.1.3, test_ids_format.py).
        same = {"id": single["id"]} if fmt == "ids" else single
        returned = await fetch(client, statement_id, format=fmt)
        assert returned["context"]["contextActivities"]["parent"] == [same]
        assert returned["context"]["contextActivities"]["other"] == [same]
        nested = (await fetch(client, sub_id, format=fmt))["object"]["context"]["contextActivities"]
        assert nested["grouping"] == [same]
    [listed, _] = await all_statements(client)
    assert isinstance(listed["object"]["context"]["contextActivities"]["grouping"], list)


# --- 2.4.7 Timestamp / 2.4.8 Stored ---------------------------------------------------------


async def test_2_4_7_s3_b2_a_missing_timestamp_is_set_to_stored(client):
    """Data 2.4.7.s3.b2: "The "timestamp" property SHOULD* be set by the LRS to the value of the
    "stored" property if not provided."."""
    [statement_id] = await store(client, stmt())
    returned = await fetch(client, statement_id)
    assert when(returned["timestamp"]) == when(returned["stored"])


async def test_2_4_7_s3_b6_future_timestamps_are_not_rejected(client):
    """Data 2.4.7.s3.b6: "An LRS SHOULD* NOT reject a timestamp for having a greater value than the
    current time, to prevent issues due to clock errors."."""
    future = (datetime.now(timezone.utc) + timedelta(days=3)).isoformat()
    await assert_accepted(client, stmt(timestamp=future))


async def test_2_4_8_s3_b2_stored_is_set_by_the_lrs(client):
    """Data 2.4.8.s3.b2: "The "stored" property MUST be set by the LRS; An LRS SHOULD validate and then
    MUST overwrite any value currently in the "stored" property of a Statement it receives."."""
    before = datetime.now(timezone.utc) - timedelta(seconds=5)
    [statement_id] = await store(client, stmt(stored="2000-01-01T00:00:00.000Z"))
    stored = when((await fetch(client, statement_id))["stored"])
    assert before <= stored <= datetime.now(timezone.utc) + timedelta(seconds=5)


async def test_2_4_8_s3_b2_a_received_stored_value_is_validated(client):
    """Data 2.4.8.s3.b2: "An LRS SHOULD validate ... any value currently in the "stored" property"."""
    await assert_rejected(client, stmt(stored="not a timestamp"), fragment="stored")


# --- 2.4.9 Authority -------------------------------------------------------------------------


async def test_2_4_9_s3_b3_every_stored_statement_has_an_authority(client):
    """Data 2.4.9.s3.b3: "The LRS MUST ensure that all Statements stored have an authority."."""
    await store(client, stmt(), stmt(object=SUB))
    for returned in await all_statements(client):
        assert returned["authority"]


async def test_2_4_9_s3_b2_basic_auth_user_is_the_entire_authority_as_an_agent(client):
    """Data 2.4.9.s3.b2: "The LRS MUST include the user as an Agent as the entire authority if a user
    connects directly (using HTTP Basic Authentication)"."""
    [statement_id] = await store(client, stmt())
    authority = (await fetch(client, statement_id))["authority"]
    assert authority.get("objectType", "Agent") == "Agent"
    assert "member" not in authority
    assert sum(k in authority for k in ("mbox", "mbox_sha1sum", "openid", "account")) == 1


async def test_2_4_9_s3_b4_a_submitted_authority_is_overwritten(client):
    """Data 2.4.9.s3.b4: "The LRS SHOULD overwrite the authority on all Statements it stores, based on
    the credentials used to send those Statements."."""
    forged = {"objectType": "Agent", "mbox": "mailto:ceo@example.org"}
    [mine] = await store(client, stmt())
    [statement_id] = await store(client, stmt(authority=forged))
    assert (await fetch(client, statement_id))["authority"] == (await fetch(client, mine))["authority"] != forged


@pytest.mark.parametrize("authority", [
    {"objectType": "Group", "member": [{"mbox": "mailto:a@example.org"}]},
    {"objectType": "Group", "member": [{"mbox": "mailto:a@example.org"}, {"mbox": "mailto:b@example.org"},
                                       {"mbox": "mailto:c@example.org"}]},
    {"name": "no ifi"},
])
async def test_2_4_9_s3_b1_authority_is_an_agent_or_a_group_of_two(client, authority):
    """Data 2.4.9.s3.b1: "Authority MUST be an Agent, except in 3-legged OAuth, where it MUST be a Group
    with two Agents."."""
    await assert_rejected(client, stmt(authority=authority), fragment="authority")


# --- 2.4.10 Version ---------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["1.0.0", "1.0.1", "1.0.3", "1.0.9"])
async def test_2_4_10_s3_b1_versions_starting_with_1_0_are_accepted(client, version):
    """Data 2.4.10.s3.b1: "An LRS MUST accept all Statements where their version starts with 1.0. if they
    otherwise validate."."""
    await assert_accepted(client, stmt(version=version))


@pytest.mark.parametrize("version", ["0.95", "0.9.0", "1.1.0", "2.0.0", "1", "10.0.0", ""])
async def test_2_4_10_s3_b2_other_versions_are_rejected(client, version):
    """Data 2.4.10.s3.b2: "An LRS MUST reject all Statements with a version specified that does not start
    with 1.0."."""
    await assert_rejected(client, stmt(version=version), fragment="version")


async def test_2_4_10_s3_b3_statements_keep_their_version_or_get_1_0_0(client):
    """Data 2.4.10.s3.b3: "Statements returned by an LRS MUST retain the version they are accepted with.
    If they lack a version, the version MUST be set to 1.0.0."."""
    [given, missing] = await store(client, stmt(version="1.0.2"), stmt())
    assert (await fetch(client, given))["version"] == "1.0.2"
    assert (await fetch(client, missing))["version"] == "1.0.0"


# --- 2.4.11 Attachments in application/json (Communication 1.5.1) ----------------------------


async def test_communication_1_5_1_s1_b2_json_batches_with_file_url_attachments_are_accepted(client):
    """Communication 1.5.1.s1.b2: "When receiving a PUT or POST with a document type of application/json,
    an LRS MUST accept batches of Statements which contain only Attachment Objects with a populated
    fileUrl."."""
    attachment = {"usageType": "http://example.com/attachment-usage/test", "display": {"en-US": "A test"},
                  "contentType": "text/plain; charset=ascii", "length": 27,
                  "sha2": "495395e777cd98da653df9615d09c0fd6bb2f8d4788394cd53c56a3bfdcd848a",
                  "fileUrl": "http://example.com/files/test.txt"}
    await assert_accepted(client, [stmt(attachments=[attachment]), stmt(attachments=[attachment, attachment])])
