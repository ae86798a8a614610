"""The page check of a stored Statement (lrs/ingest/stored_keys.py) asks its
JSON directly; it must say what the writer's filter keys say."""

from __future__ import annotations

import itertools
import uuid
from datetime import datetime, timezone
from typing import Any

import msgspec

from lrs.eventlog import finalize_statement
from lrs.ingest.prepare import prepare_statements
from lrs.ingest.query import StatementQuery
from lrs.ingest.stored_keys import has_authority, meets_filters, pair_keys, reached_keys, statement_keys

AUTHORITY = {"objectType": "Group", "member": [{"mbox": "mailto:client@example.com"},
                                               {"account": {"homePage": "https://idp.example", "name": "u1"}}]}
A, B, C = ({"mbox": f"mailto:{n}@example.com"} for n in "abc")
GROUP = {"objectType": "Group", "mbox": "mailto:team@example.com", "member": [B]}
ANON = {"objectType": "Group", "member": [C, {"openid": "https://id.example/d"}]}


def activity(n: int) -> dict[str, Any]:
    return {"id": f"http://example.com/act/{n}"}


def statements() -> list[dict[str, Any]]:
    context = {"instructor": B, "team": GROUP, "contextActivities": {"parent": [activity(2)], "grouping": [activity(3)],
                                                                    "category": [activity(4)], "other": [activity(1)]}}
    sub = {"objectType": "SubStatement", "actor": C, "verb": {"id": "http://example.com/v"}, "object": activity(5),
           "context": {"instructor": {"mbox_sha1sum": "AB" * 20}, "contextActivities": {"parent": [activity(6)]}}}
    sub_agent = {**sub, "object": ANON}
    return [
        {"actor": A, "verb": {"id": "http://example.com/v"}, "object": activity(1)},
        {"actor": A, "verb": {"id": "http://example.com/w"}, "object": activity(1), "context": context},
        {"actor": GROUP, "verb": {"id": "http://example.com/v"}, "object": {"objectType": "Agent", **B}},
        {"actor": ANON, "verb": {"id": "http://example.com/v"}, "object": GROUP, "context": {"team": ANON}},
        {"actor": A, "verb": {"id": "http://example.com/v"}, "object": sub, "context": context},
        {"actor": B, "verb": {"id": "http://example.com/v"}, "object": sub_agent},
        {"actor": A, "verb": {"id": "http://example.com/v"},
         "object": {"objectType": "StatementRef", "id": str(uuid.uuid4())}},
        {"actor": A, "verb": {"id": "http://example.com/v"}, "object": activity(7),
         "context": {"contextAgents": [{"objectType": "contextAgent", "agent": C}],
                     "contextGroups": [{"objectType": "contextGroup", "group": GROUP}],
                     "contextActivities": {"parent": activity(8)}}},
    ]


def test_the_page_check_says_what_the_filter_keys_say() -> None:
    prepared = prepare_statements(statements(), version="2.0.0", authority=AUTHORITY, new_id=uuid.uuid4)
    bodies = [msgspec.json.decode(finalize_statement(p.body, datetime(2024, 1, 1, tzinfo=timezone.utc)))
              for p in prepared]
    every_key = set().union(*(statement_keys(b) for b in bodies))
    agents = {k[2:] for k in every_key if k[:2] in ("A:", "a:", "U:")} | {"mbox:mailto:nobody@example.com"}
    activities = {k[2:] for k in every_key if k[:2] in ("O:", "o:")} | {"http://example.com/act/none"}
    checked = 0
    for body in bodies:
        keys = statement_keys(body)
        for agent, related in itertools.product(agents, (False, True)):
            expected = "A:" + agent in keys or (related and "a:" + agent in keys)
            assert meets_filters(StatementQuery(limit=1, agent=agent, related_agents=related), body) == expected
            checked += expected
        for value, related in itertools.product(activities, (False, True)):
            expected = "O:" + value in keys or (related and "o:" + value in keys)
            assert meets_filters(StatementQuery(limit=1, activity=value, related_activities=related), body) == expected
            checked += expected
        for agent in agents:
            assert has_authority(body, agent) == ("U:" + agent in keys)
    assert checked > 40  # the statements do match many of the values



def test_a_referrer_holds_what_its_target_meets_filters_by() -> None:
    """reached_keys (what a referring Statement holds for a Statement its
    chain reaches): every filter key (the authority's too, which a
    related_agents page walks for them: an Agent authority's related agent
    key has no row of the target's own), the verb, the registration and the
    activity + verb pair, so that each filter the target meets finds its referrers."""
    bodies = statements()
    bodies[1]["context"]["registration"] = "6F9619FF-8B86-D011-B42D-00CF4FC964FF"
    prepared = prepare_statements(bodies, version="2.0.0", authority=AUTHORITY, new_id=uuid.uuid4)
    stored = [msgspec.json.decode(finalize_statement(p.body, datetime(2024, 1, 1, tzinfo=timezone.utc)))
              for p in prepared]
    for body in stored:
        reached = reached_keys(body)
        registration = (body.get("context") or {}).get("registration")
        activity = body["object"]["id"] if body["object"].get("objectType", "Activity") == "Activity" else None
        pairs = {f"P:{activity}\x1f{body['verb']['id']}"} if activity else set()
        assert pair_keys(body) == pairs
        assert any(k.startswith("U:") for k in reached)
        assert reached == set(statement_keys(body)) | {
            "V:" + body["verb"]["id"]} | ({"R:" + registration.lower()} if registration else set()) | pairs
        if activity:  # the pair key is the activity + verb filter's
            assert meets_filters(StatementQuery(limit=1, activity=activity, verb=body["verb"]["id"]), body)
        if registration:  # PostgreSQL's text of the uuid, as the reader hashes it
            assert meets_filters(StatementQuery(limit=1, registration=uuid.UUID(registration)), body)
            assert "R:6f9619ff-8b86-d011-b42d-00cf4fc964ff" in reached
