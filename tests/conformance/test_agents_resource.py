"""Communication 2.4 "Agents Resource" (1.0.3; the same resource in 2.0): the Person Object."""

from __future__ import annotations

import json

import pytest

from tests.conformance.support import headers, store, stmt

AGENTS = "/xapi/agents"


async def person(client, agent, version: str):
    return await client.get(AGENTS, params={"agent": json.dumps(agent)}, headers=headers(version))


@pytest.mark.parametrize("version", ["1.0.3", "2.0.0"])
@pytest.mark.parametrize("agent", [
    {"objectType": "Agent", "name": "Nobody", "mbox": "mailto:nobody@example.org"},
    {"mbox_sha1sum": "ab" * 20},
    {"openid": "http://openid.example.org/nobody"},
    {"account": {"homePage": "https://id.example.gov", "name": "u-404"}},
])
async def test_2_4_s3_b3_an_unknown_agent_is_a_person_with_only_its_own_information(client, agent, version):
    """Communication 2.4.s3.b3: "If an LRS does not have any additional information about an Agent to
    return, the LRS MUST still return a Person Object when queried, but that Person Object will only
    include the information associated with the requested Agent." (2.4.s2: "Returns: 200 OK, Person
    Object"; each Person property is an array, 2.4.s5)."""
    response = await person(client, agent, version)
    assert response.status == 200
    expected = {"objectType": "Person"}
    for key, value in agent.items():
        if key != "objectType":
            expected[key] = [value]
    assert await response.json() == expected


@pytest.mark.parametrize("version", ["1.0.3", "2.0.0"])
async def test_2_4_s5_names_the_lrs_knows_are_listed_once_each(client, version):
    """Communication 2.4.s5 (Person properties): "name: Array of strings. List of names of Agents
    retrieved." The names the requested Agent was given in stored Statements, each once."""
    agent = {"mbox": "mailto:ann@example.org"}
    await store(client, stmt(actor={**agent, "name": "Ann"}), stmt(actor={**agent, "name": "Ann N."}),
                stmt(actor={**agent, "name": "Ann"}))
    body = await (await person(client, agent, version)).json()
    assert sorted(body["name"]) == ["Ann", "Ann N."] and body["mbox"] == [agent["mbox"]]


@pytest.mark.parametrize("agent", [
    {"objectType": "Group", "mbox": "mailto:team@example.org"},
    {"objectType": "Person", "mbox": ["mailto:a@example.org"]},
    {"name": "no identifier"},
    {"mbox": "mailto:a@example.org", "openid": "http://openid.example.org/a"},
])
async def test_2_4_s2_the_agent_parameter_is_a_plain_agent(client, agent):
    """Communication 2.4.s2: "The "agent" parameter is a normal Agent Object with a single identifier and
    no arrays. It is not a Person Object, nor is it a Group." Anything else is 400 naming the parameter."""
    response = await person(client, agent, "1.0.3")
    assert response.status == 400
    assert "agent" in json.dumps(await response.json())
