"""xAPI-Communication 2.1 "Statement Resource" (PUT, POST, GET, voided Statements) and Data 2.5 retrieval."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from tests.conformance.support import (
    ACTIVITY,
    STATEMENTS,
    all_statements,
    error_of,
    fetch,
    get,
    headers,
    new_id,
    post,
    put,
    store,
    stmt,
)

VOIDED = "http://adlnet.gov/expapi/verbs/voided"
BEN = {"objectType": "Agent", "mbox": "mailto:ben@example.org"}
ANDREW = {"objectType": "Agent", "mbox": "mailto:andrew@example.org"}


def when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def voiding(target: str) -> dict:
    return stmt(actor=ANDREW, verb={"id": VOIDED}, object={"objectType": "StatementRef", "id": target})


# --- 2.1.1 PUT Statements ---------------------------------------------------------------


async def test_2_1_1_put_stores_the_statement_with_the_given_id_and_returns_204(client):
    """Communication 2.1.1.s1: "Stores a single Statement with the given id." Returns: 204 No Content."""
    statement_id = new_id()
    response = await put(client, statement_id, stmt())
    assert response.status == 204
    assert await response.read() == b""
    assert (await fetch(client, statement_id))["id"] == statement_id


async def test_2_1_1_put_requires_the_statement_id_parameter(client):
    """Communication 2.1.1.s1 table: statementId is Required."""
    response = await client.put(STATEMENTS, data=json.dumps(stmt()), headers={**headers(), "Content-Type": "application/json"})
    assert response.status == 400
    assert "statementId" in await error_of(response)
    assert await all_statements(client) == []


async def test_2_1_1_s3_b3_the_statement_id_must_match_the_parameter(client):
    """Communication 2.1.1.s3.b3: "Where provided, the "id" property of the Statement MUST match the
    "statementId" parameter of the request." (the LRS rejects a mismatch)."""
    response = await put(client, new_id(), stmt(id=new_id()))
    assert response.status == 400
    await error_of(response)
    assert await all_statements(client) == []


async def test_2_1_1_s2_b2_b3_put_of_an_existing_id_modifies_nothing(client):
    """Communication 2.1.1.s2.b2: "An LRS MUST NOT make any modifications to its state based on receiving
    a Statement with a statementId that it already has a Statement for." and s2.b3: it "SHOULD return
    409 Conflict if they do not match"."""
    statement_id = new_id()
    assert (await put(client, statement_id, stmt(result={"success": True}))).status == 204
    original = await fetch(client, statement_id)
    assert (await put(client, statement_id, stmt(result={"success": True}))).status == 204
    assert (await put(client, statement_id, stmt(result={"success": False}))).status == 409
    assert await all_statements(client) == [original]


# --- 2.1.2 POST Statements ---------------------------------------------------------------


async def test_2_1_2_post_returns_200_and_the_ids_in_order(client):
    """Communication 2.1.2.s1: Returns "200 OK, Array of Statement id(s) (UUID) in the same order as the
    corresponding stored Statements."."""
    given = [new_id(), None, new_id(), None]
    response = await post(client, [stmt(id=i) if i else stmt() for i in given])
    assert response.status == 200
    ids = await response.json()
    assert len(ids) == 4 and ids[0] == given[0] and ids[2] == given[2]
    for statement_id in ids:
        assert (await fetch(client, statement_id))["id"] == statement_id


async def test_2_1_2_post_accepts_a_single_statement_object(client):
    """Communication 2.1.2.s1: "Content: An array of Statements or a single Statement to be stored."."""
    statement_id = new_id()
    response = await post(client, stmt(id=statement_id))
    assert response.status == 200
    assert await response.json() == [statement_id]


async def test_2_1_2_s2_b4_b5_post_of_an_existing_id_modifies_nothing(client):
    """Communication 2.1.2.s2.b4: "An LRS MUST NOT make any modifications to its state based on receiving
    a Statement with an id that it already has a Statement for." and s2.b5: "SHOULD return 409 Conflict
    if they do not match"."""
    statement_id = new_id()
    await store(client, stmt(id=statement_id, result={"response": "first"}))
    original = await fetch(client, statement_id)
    assert (await post(client, stmt(id=statement_id, result={"response": "first"}))).status == 200
    response = await post(client, [stmt(), stmt(id=statement_id, result={"response": "second"})])
    assert response.status == 409
    await error_of(response)
    assert await all_statements(client) == [original]


async def test_2_1_2_s2_b6_duplicate_ids_in_one_batch_are_400(client):
    """Communication 2.1.2.s2.b6 (and 2.1.1.s2.b4): "If the LRS receives a batch of Statements containing
    two or more Statements with the same id, it SHOULD* reject the batch and return 400 Bad Request."."""
    statement_id = new_id()
    response = await post(client, [stmt(id=statement_id), stmt(), stmt(id=statement_id.upper())])
    assert response.status == 400
    assert statement_id in (await error_of(response)).lower()
    assert await all_statements(client) == []


# --- 2.1.3 GET Statements ---------------------------------------------------------------


async def test_2_1_3_s1_get_by_statement_id_returns_the_statement(client):
    """Communication 2.1.3.s1: "If the statementId or voidedStatementId parameter is specified a single
    Statement is returned." (and an unknown id is 404, Communication 3.2.s2.b4)."""
    [statement_id] = await store(client, stmt())
    response = await get(client, {"statementId": statement_id})
    assert response.status == 200
    assert (await response.json())["id"] == statement_id
    assert (await get(client, {"statementId": new_id()})).status == 404


async def test_2_1_3_s1_statement_result_in_reverse_stored_order(client):
    """Communication 2.1.3.s1: "returns: A StatementResult Object, a list of Statements in reverse
    chronological order based on "stored" time"; ascending=true reverses it."""
    ids = []
    for _ in range(3):
        ids += await store(client, stmt())
    response = await get(client)
    result = await response.json()
    assert [s["id"] for s in result["statements"]] == ids[::-1]
    stored = [when(s["stored"]) for s in result["statements"]]
    assert stored == sorted(stored, reverse=True)
    assert [s["id"] for s in await all_statements(client, ascending="true")] == ids


async def test_2_1_3_s2_b1_statement_id_and_voided_statement_id_together_are_400(client):
    """Communication 2.1.3.s2.b1: "The LRS MUST reject with a 400 Bad Request error any requests to this
    resource which contain both statementId and voidedStatementId parameters"."""
    [statement_id] = await store(client, stmt())
    response = await get(client, {"statementId": statement_id, "voidedStatementId": statement_id})
    assert response.status == 400
    await error_of(response)


async def test_2_1_3_s2_b2_single_fetch_allows_only_attachments_and_format(client):
    """Communication 2.1.3.s2.b2: "The LRS MUST reject with an 400 Bad Request error any requests to this
    resource which contain statementId or voidedStatementId parameters, and also contain any other
    parameter besides "attachments" or "format"."."""
    [statement_id] = await store(client, stmt())
    others = {"agent": json.dumps(BEN), "verb": "http://example.org/v", "activity": ACTIVITY,
              "registration": new_id(), "related_activities": "true", "related_agents": "true",
              "since": "2020-01-01T00:00:00Z", "until": "2030-01-01T00:00:00Z", "limit": "1", "ascending": "true"}
    for single in ("statementId", "voidedStatementId"):
        for name, value in others.items():
            response = await get(client, {single: statement_id, name: value})
            assert response.status == 400, (single, name)
            await error_of(response)
    ok = await get(client, {"statementId": statement_id, "format": "ids", "attachments": "false"})
    assert ok.status == 200


async def test_2_1_3_s2_b4_no_match_is_200_with_an_empty_array(client):
    """Communication 2.1.3.s2.b4: "In the event that no Statements are found matching the query filter
    criteria, the LRS MUST still return 200 OK and a StatementResult Object. In this case, the
    "statements" property will contain an empty array."."""
    response = await get(client, {"verb": "http://example.org/never-used"})
    assert response.status == 200
    result = await response.json()
    assert result["statements"] == [] and result.get("more", "") == ""


async def test_2_1_3_s2_b5_consistent_through_on_all_statement_responses(client):
    """Communication 2.1.3.s2.b5: "The LRS MUST include the header "X-Experience-API-Consistent-Through",
    in ISO 8601 combined date and time format, on all responses to Statements Resource requests" (a
    recent timestamp, covering what was just stored)."""
    statement_id = new_id()
    responses = [await post(client, stmt()), await put(client, statement_id, stmt()),
                 await get(client), await get(client, {"statementId": statement_id})]
    for response in responses:
        value = response.headers.get("X-Experience-API-Consistent-Through")
        assert value, response
        moment = when(value)
        assert moment.tzinfo is not None
        assert abs(datetime.now(timezone.utc) - moment) < timedelta(minutes=1)
    stored = when((await fetch(client, statement_id))["stored"])
    assert when(responses[-1].headers["X-Experience-API-Consistent-Through"]) >= stored


async def test_2_1_3_s2_b5_consistent_through_on_error_responses_too(client):
    """Communication 2.1.3.s2.b5: the header is required "on all responses to Statements Resource
    requests", which includes 400 and 404 answers."""
    for response in (await get(client, {"statementId": new_id()}), await get(client, {"limit": "x"}),
                     await post(client, {"not": "a statement"})):
        assert response.headers.get("X-Experience-API-Consistent-Through"), response.status


async def test_2_1_3_s2_b7_attachments_false_is_application_json(client):
    """Communication 2.1.3.s2.b7: "If the "attachment" property of a GET statement is used and is set to
    false, the LRS MUST NOT include Attachment raw data and MUST report application/json."."""
    [statement_id] = await store(client, stmt())
    for params in ({"attachments": "false"}, {"statementId": statement_id, "attachments": "false"}):
        response = await get(client, params)
        assert response.status == 200
        assert response.content_type == "application/json"
        await response.json()


async def test_2_1_3_s2_b8_last_modified_matches_stored(client):
    """Communication 2.1.3.s2.b8: "The LRS SHOULD* include a "Last-Modified" header which matches the
    "stored" Timestamp of the Statement."."""
    from email.utils import parsedate_to_datetime

    [statement_id] = await store(client, stmt())
    response = await get(client, {"statementId": statement_id})
    stored = when((await response.json())["stored"])
    assert parsedate_to_datetime(response.headers["Last-Modified"]) == stored.replace(microsecond=0)


async def test_2_1_3_agent_filter_matches_actor_object_and_group_members(client):
    """Communication 2.1.3.s1 table, agent: "only return Statements for which the specified Agent or Group
    is the Actor or Object of the Statement" and "Groups that have members which match the specified
    Agent ... are considered a match"."""
    as_actor, as_object, as_member, _other = await store(
        client, stmt(actor=BEN), stmt(object=BEN),
        stmt(actor={"objectType": "Group", "member": [ANDREW, BEN]}), stmt(actor=ANDREW, context={"instructor": BEN}),
    )
    found = {s["id"] for s in await all_statements(client, agent=json.dumps({"mbox": "mailto:ben@example.org"}))}
    assert found == {as_actor, as_object, as_member}


async def test_2_1_3_related_agents_widens_the_agent_filter(client):
    """Communication 2.1.3.s1 table, related_agents: "Include Statements for which the Actor, Object,
    Authority, Instructor, Team, or any of these properties in a contained SubStatement match"."""
    sub = {"objectType": "SubStatement", "actor": ANDREW, "verb": {"id": "http://example.org/v"},
           "object": {"id": ACTIVITY}, "context": {"instructor": BEN}}
    ids = await store(client, stmt(actor=BEN), stmt(actor=ANDREW, context={"instructor": BEN}),
                      stmt(actor=ANDREW, context={"team": {"objectType": "Group", "member": [BEN]}}),
                      stmt(actor=ANDREW, object=sub), stmt(actor=ANDREW))
    agent = json.dumps(BEN)
    assert {s["id"] for s in await all_statements(client, agent=agent)} == {ids[0]}
    assert {s["id"] for s in await all_statements(client, agent=agent, related_agents="true")} == set(ids[:4])


async def test_2_1_3_verb_activity_and_registration_filters(client):
    """Communication 2.1.3.s1 table: verb, activity ("the Object of the Statement is an Activity with the
    specified id") and registration filters."""
    registration = new_id()
    a, b, c = await store(client, stmt(verb={"id": "http://example.org/passed"}),
                          stmt(object={"id": "http://example.org/other"}, context={"registration": registration}),
                          stmt(context={"contextActivities": {"parent": [{"id": "http://example.org/other"}]}}))
    assert [s["id"] for s in await all_statements(client, verb="http://example.org/passed")] == [a]
    assert [s["id"] for s in await all_statements(client, activity="http://example.org/other")] == [b]
    assert [s["id"] for s in await all_statements(client, registration=registration)] == [b]
    related = await all_statements(client, activity="http://example.org/other", related_activities="true")
    assert {s["id"] for s in related} == {b, c}


async def test_2_1_3_since_is_exclusive_and_until_inclusive(client):
    """Communication 2.1.3.s1 table: since: "Only Statements stored since the specified Timestamp
    (exclusive)"; until: "Only Statements stored at or before the specified Timestamp"."""
    first, second = [], []
    first += await store(client, stmt())
    second += await store(client, stmt())
    cut = (await fetch(client, first[0]))["stored"]
    assert [s["id"] for s in await all_statements(client, since=cut)] == second
    assert [s["id"] for s in await all_statements(client, until=cut)] == first


async def test_2_1_3_limit_and_data_2_5_more(client):
    """Communication 2.1.3.s1 table, limit ("Maximum number of Statements to return. 0 indicates return
    the maximum the server will allow") and Data 2.5.s2 table, more ("Relative IRL ... excluding scheme,
    host, and port. Empty string if there are no more results"); Data 2.5.s3.b1: the more IRL is usable."""
    ids = await store(client, *[stmt() for _ in range(5)])
    response = await get(client, {"limit": "2"})
    page = await response.json()
    assert len(page["statements"]) == 2 and page["more"].startswith("/")
    seen = [s["id"] for s in page["statements"]]
    while page["more"]:
        page = await (await client.get(page["more"], headers=headers())).json()
        seen += [s["id"] for s in page["statements"]]
    assert seen == ids[::-1]
    everything = await (await get(client, {"limit": "0"})).json()
    assert len(everything["statements"]) == 5 and everything["more"] == ""


async def test_2_1_3_format_ids_keeps_only_identifiers(client):
    """Communication 2.1.3.s1 table, format ids: "only include minimum information necessary in Agent,
    Activity, Verb and Group Objects to identify them. For Anonymous Groups this means including the
    minimum information needed to identify each member."."""
    actor = {"objectType": "Group", "name": "Team", "member": [{**BEN, "name": "Ben"}]}
    [statement_id] = await store(client, stmt(actor=actor, object={"id": ACTIVITY, "definition": {"name": {"en": "A"}}}))
    returned = await fetch(client, statement_id, format="ids")
    assert returned["actor"] == {"objectType": "Group", "member": [{"objectType": "Agent", "mbox": BEN["mbox"]}]}
    assert "definition" not in returned["object"] and returned["object"]["id"] == ACTIVITY
    assert "name" not in returned["authority"]


async def test_2_1_3_s4_b1_b5_canonical_returns_one_language_per_map(client):
    """Communication 2.1.3.s4.b1: "The LRS MUST return only one language in each of these maps." and
    s4.b5: "the LRS MUST apply the "Accept-Language" header ... to each language map individually"."""
    definition = {"name": {"en-US": "Unit", "vi-VN": "Bài"}, "description": {"en-US": "About", "vi-VN": "Về"},
                  "interactionType": "choice", "choices": [{"id": "a", "description": {"vi": "Á", "en-US": "A"}}]}
    [statement_id] = await store(client, stmt(object={"id": ACTIVITY, "definition": definition}))
    response = await get(client, {"statementId": statement_id, "format": "canonical"},
                         extra={"Accept-Language": "vi-VN, en;q=0.5"})
    returned = (await response.json())["object"]["definition"]
    assert returned["name"] == {"vi-VN": "Bài"}
    assert returned["description"] == {"vi-VN": "Về"}
    # RFC 2616 14.4: the range "vi-VN" does not match the tag "vi"; "en" matches "en-US".
    assert returned["choices"][0]["description"] == {"en-US": "A"}
    english = await get(client, {"statementId": statement_id, "format": "canonical"}, extra={"Accept-Language": "en"})
    assert (await english.json())["object"]["definition"]["name"] == {"en-US": "Unit"}


async def test_2_1_3_s3_statements_targeting_a_match_also_match(client):
    """Communication 2.1.3.s3: "Statements which target another Statement (by using a StatementRef as the
    Object of the Statement) will meet the filter condition if the targeted Statement meets the filter
    condition." (recursively; time filters still apply to the targeting Statement)."""
    [ben_passed] = await store(client, stmt(actor=BEN, object={"id": "http://example.org/explosives"}))
    [confirmed] = await store(client, stmt(actor=ANDREW, verb={"id": "http://example.org/confirmed"},
                                           object={"objectType": "StatementRef", "id": ben_passed}))
    [commented] = await store(client, stmt(actor=ANDREW, verb={"id": "http://example.org/commented"},
                                           object={"objectType": "StatementRef", "id": confirmed}))
    await store(client, stmt(actor=ANDREW, context={"statement": {"objectType": "StatementRef", "id": ben_passed}}))
    by_agent = {s["id"] for s in await all_statements(client, agent=json.dumps(BEN))}
    assert by_agent == {ben_passed, confirmed, commented}
    by_activity = {s["id"] for s in await all_statements(client, activity="http://example.org/explosives")}
    assert by_activity == {ben_passed, confirmed, commented}
    cut = (await fetch(client, ben_passed))["stored"]
    assert {s["id"] for s in await all_statements(client, agent=json.dumps(BEN), since=cut)} == {confirmed, commented}


# --- 2.1.4 Voided Statements -----------------------------------------------------------


async def test_2_1_4_s1_b1_voided_statements_are_only_returned_by_voided_statement_id(client):
    """Communication 2.1.4.s1.b1: "The LRS MUST not return any Statement which has been voided, unless that
    Statement has been requested by voidedStatementId."."""
    [target] = await store(client, stmt(actor=BEN))
    [voider] = await store(client, voiding(target))
    assert target not in {s["id"] for s in await all_statements(client)}
    assert target not in {s["id"] for s in await all_statements(client, agent=json.dumps(BEN))}
    assert (await get(client, {"statementId": target})).status == 404
    assert (await fetch(client, target, voided=True))["id"] == target
    assert (await get(client, {"voidedStatementId": voider})).status == 404


async def test_2_1_4_s1_b2_statements_targeting_a_voided_statement_are_still_returned(client):
    """Communication 2.1.4.s1.b2: "The LRS MUST still return any Statements targeting the voided
    Statement, following the process and conditions described in the section on filter conditions for
    StatementRefs. This includes the voiding Statement, which cannot be voided."."""
    [target] = await store(client, stmt(actor=BEN))
    [comment] = await store(client, stmt(actor=ANDREW, object={"objectType": "StatementRef", "id": target}))
    [voider] = await store(client, voiding(target))
    assert {s["id"] for s in await all_statements(client, agent=json.dumps(BEN))} == {comment, voider}
    assert (await fetch(client, voider))["id"] == voider
