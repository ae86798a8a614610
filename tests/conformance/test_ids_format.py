"""Communication 2.1.3 (1.0.3) / 4.1.6.1 (2.0) "format" parameter of GET Statements: ``ids`` keeps only
what identifies each Agent, Activity, Verb and Group, at every depth, SubStatements included."""

from __future__ import annotations

import pytest

from tests.conformance.support import ACTIVITY, VERB, all_statements, get, store, stmt

DEFINED = {"objectType": "Activity", "id": ACTIVITY,
           "definition": {"name": {"en-US": "Conformance"}, "type": "http://adlnet.gov/expapi/activities/course"}}
PARENT = {"objectType": "Activity", "id": "http://example.org/activities/parent", "definition": {"name": {"en": "P"}}}
SUB = {
    "objectType": "SubStatement",
    "actor": {"objectType": "Agent", "name": "Sub Actor", "mbox": "mailto:sub@example.org"},
    "verb": {"id": VERB, "display": {"en-US": "attempted"}},
    "object": DEFINED,
    "context": {"contextActivities": {"parent": [PARENT]}},
}


def every_object(node, found):
    """Every JSON object inside ``node``, at any depth."""
    if isinstance(node, dict):
        found.append(node)
        for value in node.values():
            every_object(value, found)
    elif isinstance(node, list):
        for value in node:
            every_object(value, found)
    return found


@pytest.mark.parametrize("version", ["1.0.3", "2.0.0"])
async def test_2_1_3_format_ids_reduces_every_activity_to_its_id_at_every_depth(client, version):
    """1.0.3 Communication 2.1.3.s1 (table, "format"): "If ids, only include minimum information necessary
    in Agent, Activity, Verb and Group Objects to identify them."; 2.0 4.1.6.1: "If ids, only include
    minimum information necessary in Agent, Activity, Verb and Group Objects to identify them." An
    Activity is identified by its id alone: no objectType, no definition, in the Statement, its context
    and inside a SubStatement."""
    await store(client, stmt(object=DEFINED, context={"contextActivities": {"grouping": [PARENT]}}), stmt(object=SUB))
    response = await get(client, {"format": "ids"}, version=version)
    assert response.status == 200
    returned = (await response.json())["statements"]
    by_object = {s["object"].get("objectType", "Activity"): s for s in returned}
    sub = by_object["SubStatement"]["object"]
    assert sub["object"] == {"id": ACTIVITY}
    assert sub["context"]["contextActivities"]["parent"] == [{"id": PARENT["id"]}]
    assert sub["actor"] == {"objectType": "Agent", "mbox": "mailto:sub@example.org"}
    assert sub["verb"] == {"id": VERB}
    plain = by_object["Activity"]
    assert plain["object"] == {"id": ACTIVITY}
    assert plain["context"]["contextActivities"]["grouping"] == [{"id": PARENT["id"]}]
    for found in every_object(returned, []):
        assert found.get("objectType") != "Activity" and "definition" not in found, found


async def test_2_1_3_format_exact_keeps_the_activities_as_sent(client):
    """1.0.3 Communication 2.1.3.s1 (table, "format"): "If exact, return Agent, Activity, Verb and Group
    Objects populated exactly as they were when the Statement was received." (the ids rewrite touches
    only format=ids)."""
    await store(client, stmt(object=SUB))
    [returned] = await all_statements(client, format="exact")
    assert returned["object"]["object"] == DEFINED
