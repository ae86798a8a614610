"""The narrow page check (lrs/store/page_check.py) reads a few fields of a
stored Statement's bytes; it must say what the whole JSON's check says
(lrs/ingest/stored_keys.py meets_filters and statement_ref_target)."""

from __future__ import annotations

import itertools
import uuid
from datetime import datetime, timezone

import msgspec

from lrs.eventlog import finalize_statement
from lrs.ingest.prepare import prepare_statements
from lrs.ingest.query import StatementQuery
from lrs.ingest.stored_keys import meets_filters, statement_keys, statement_ref_target
from lrs.store.page_check import narrow_check
from tests.unit.test_stored_keys import AUTHORITY, A, GROUP, activity, statements

REGISTRATION = "6F9619FF-8B86-D011-B42D-00CF4FC964FF"
VOIDED = "http://adlnet.gov/expapi/verbs/voided"


def stored() -> list[bytes]:
    bodies = statements()
    bodies[1]["context"]["registration"] = REGISTRATION
    bodies[4]["object"]["context"]["registration"] = str(uuid.uuid4())  # a SubStatement's is not the Statement's
    ref = {"objectType": "StatementRef", "id": str(uuid.uuid4())}
    verb = {"id": "http://example.com/v"}
    bodies += [
        # an Activity Object that names its type; a SubStatement whose Object is a StatementRef (no Activity)
        {"actor": A, "verb": verb, "object": {"objectType": "Activity", **activity(1)}},
        {"actor": A, "verb": verb, "object": {"objectType": "SubStatement", "actor": A, "verb": verb, "object": ref}},
        # a SubStatement's registration and every kind of context activity, inside it only
        {"actor": A, "verb": {"id": "http://example.com/w"}, "object": {
            "objectType": "SubStatement", "actor": A, "verb": verb, "object": {"objectType": "Activity", **activity(2)},
            "context": {"registration": REGISTRATION, "contextActivities": {
                "category": [activity(3)], "grouping": [activity(4)], "other": [activity(1), activity(6)]}}}},
        # a Group Object beside a lowercase registration; a voiding Statement with a registration
        {"actor": A, "verb": verb, "object": GROUP,
         "context": {"registration": REGISTRATION.lower(), "contextActivities": {"grouping": [activity(5)]}}},
        {"actor": A, "verb": {"id": VOIDED}, "object": ref, "context": {"registration": REGISTRATION}},
        # a StatementRef in the context (not the Object's): no chain to follow
        {"actor": A, "verb": verb, "object": activity(6), "context": {"statement": ref, "contextActivities": {}}},
    ]
    prepared = prepare_statements(bodies, version="2.0.0", authority=AUTHORITY, new_id=uuid.uuid4)
    return [finalize_statement(p.body, datetime(2024, 1, 1, tzinfo=timezone.utc)) for p in prepared]


def test_the_narrow_check_says_what_the_whole_json_says() -> None:
    payloads = stored()
    bodies = [msgspec.json.decode(p) for p in payloads]
    every_key = set().union(*(statement_keys(b) for b in bodies))
    activities = sorted({k[2:] for k in every_key if k[:2] in ("O:", "o:")} | {"http://example.com/act/none"})
    verbs = [None, "http://example.com/v", "http://example.com/w", VOIDED]
    registrations = [None, uuid.UUID(REGISTRATION), uuid.uuid4()]
    met = 0
    for activity_id, related, verb, registration in itertools.product([None, *activities], (False, True), verbs,
                                                                      registrations):
        query = StatementQuery(limit=1, activity=activity_id, related_activities=related, verb=verb,
                               registration=registration)
        check = narrow_check(query, None)
        assert check is not None
        for payload, body in zip(payloads, bodies):
            assert check(payload) == (meets_filters(query, body), statement_ref_target(body))
            met += meets_filters(query, body)
    assert met > 50  # many of the combinations do match


def test_agents_and_the_authority_are_asked_of_the_whole_json() -> None:
    assert narrow_check(StatementQuery(limit=1, agent="mbox:mailto:a@example.com"), None) is None
    assert narrow_check(StatementQuery(limit=1, verb="http://example.com/v"), "mbox:mailto:a@example.com") is None


def test_bytes_of_another_form_are_left_to_the_whole_json() -> None:
    check = narrow_check(StatementQuery(limit=1, activity="http://example.com/act/1", related_activities=True), None)
    assert check is not None
    # a context activity not in a list: not the stored form, so the whole JSON decides
    odd = b'{"verb":{"id":"v"},"object":{"id":"x"},"context":{"contextActivities":{"parent":{"id":"p"}}}}'
    assert check(odd) is None
