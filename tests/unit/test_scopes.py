"""The scope table (Communication 4.2) applied per route and method."""

from __future__ import annotations

import pytest

from lrs.auth import RESOURCE_SCOPES, SCOPES, Credential, resource_scopes, scopes_needed


def cred(*scopes: str) -> Credential:
    return Credential("k", "t", frozenset(scopes))


STATEMENTS = "/xapi/statements"
STATE = "/xapi/activities/state"
ACTIVITY_PROFILE = "/xapi/activities/profile"
AGENT_PROFILE = "/xapi/agents/profile"
WRITES = ("PUT", "POST", "DELETE")


def test_all_allows_every_method_on_every_route_even_unlisted_ones():
    everything = cred("all")
    for resource in [*RESOURCE_SCOPES, "/competency/learners/{learner}", "/somewhere/new"]:
        for method in ("GET", "HEAD", *WRITES):
            assert everything.may(method, resource)
    assert all(everything.allows(scope) for scope in SCOPES - {"erase"})


def test_erasing_needs_the_erase_scope_by_name_not_all():
    assert not cred("all").allows("erase")
    for method in ("GET", *WRITES):
        assert not cred("all").may(method, "/admin/erasures")
        assert not cred("all/read").may(method, "/admin/erasures")
    assert cred("erase").may("POST", "/admin/erasures")
    assert cred("all", "erase").may("POST", "/admin/erasures")
    assert not cred("erase").may("GET", "/xapi/statements")


def test_all_read_reads_everything_and_writes_nothing():
    reader = cred("all/read")
    for resource in [STATEMENTS, STATE, ACTIVITY_PROFILE, AGENT_PROFILE, "/xapi/activities", "/xapi/agents",
                     "/metrics", "/competency/learners/{learner}", "/somewhere/new"]:
        assert reader.may("GET", resource) and reader.may("HEAD", resource)
        for method in WRITES:
            assert not reader.may(method, resource), (method, resource)


def test_statement_scopes():
    writer, reader, mine = cred("statements/write"), cred("statements/read"), cred("statements/read/mine")
    assert writer.may("POST", STATEMENTS) and writer.may("PUT", STATEMENTS)
    assert not writer.may("GET", STATEMENTS)
    assert reader.may("GET", STATEMENTS) and not reader.may("POST", STATEMENTS)
    assert mine.may("GET", STATEMENTS) and not mine.may("PUT", STATEMENTS)
    # Reading any Statement includes one's own; not the other way round.
    assert reader.allows("statements/read/mine") and not mine.allows("statements/read")
    for credential in (writer, reader, mine):
        for resource in (STATE, ACTIVITY_PROFILE, AGENT_PROFILE):
            assert not credential.may("GET", resource) and not credential.may("PUT", resource)


@pytest.mark.parametrize("scope, resources", [
    ("state", (STATE,)),
    ("profile", (ACTIVITY_PROFILE, AGENT_PROFILE)),
])
def test_document_scopes_read_and_write_their_own_resources_only(scope, resources):
    credential = cred(scope)
    for resource in (STATE, ACTIVITY_PROFILE, AGENT_PROFILE):
        for method in ("GET", "HEAD", *WRITES):
            assert credential.may(method, resource) == (resource in resources), (method, resource)
    assert not credential.may("GET", STATEMENTS) and not credential.may("POST", STATEMENTS)


def test_activities_and_agents_are_read_by_any_reading_scope_but_not_by_write_only():
    for scope in ("statements/read", "statements/read/mine", "define", "profile", "state", "all/read"):
        assert cred(scope).may("GET", "/xapi/activities") and cred(scope).may("GET", "/xapi/agents")
    assert not cred("statements/write").may("GET", "/xapi/activities")
    assert not cred("statements/write").may("GET", "/xapi/agents")
    assert not cred("define").may("POST", "/xapi/activities")


def test_define_alone_reaches_no_resource_but_lookups():
    define = cred("define")
    assert define.allows("define")
    for resource in (STATEMENTS, STATE, ACTIVITY_PROFILE, AGENT_PROFILE, "/metrics"):
        assert not define.may("GET", resource) and not define.may("POST", resource)


def test_metrics_need_all_or_all_read():
    assert not cred("statements/read", "statements/write", "state", "profile", "define").may("GET", "/metrics")
    assert cred("all").may("GET", "/metrics") and cred("all/read").may("GET", "/metrics")


def test_unlisted_routes_are_closed_except_to_all_and_reads_by_all_read():
    assert resource_scopes("/xapi/unknown") is None
    assert not cred("statements/read", "statements/write", "state", "profile", "define").may("GET", "/xapi/unknown")


def test_prefix_rules_cover_routes_below_them():
    assert resource_scopes("/competency/learners/{learner}") is RESOURCE_SCOPES["/competency/"]
    assert cred("all/read").may("GET", "/competency/learners/{learner}")
    assert not cred("statements/read").may("GET", "/competency/learners/{learner}")
    assert not cred("all/read").may("POST", "/competency/admin/roster")
    # An exact key is not a prefix.
    assert resource_scopes("/xapi/activities/other") is None


def test_scopes_combine():
    both = cred("statements/write", "statements/read/mine")  # the spec's default pair
    assert both.may("POST", STATEMENTS) and both.may("GET", STATEMENTS)
    assert not both.allows("statements/read")


def test_a_refusal_names_the_scopes_that_would_let_the_request_through():
    assert scopes_needed("POST", "/admin/erasures") == ["erase"]
    assert scopes_needed("GET", "/metrics") == ["all", "all/read"]
    assert scopes_needed("PUT", "/xapi/activities/state") == ["all", "state"]
    assert scopes_needed("GET", "/xapi/statements") == ["all", "all/read", "statements/read/mine"]
    for method, resource in (("POST", "/admin/erasures"), ("PUT", "/xapi/activities/state"), ("GET", "/metrics")):
        for scope in scopes_needed(method, resource):
            assert cred(scope).may(method, resource), (scope, method, resource)


def test_the_scopes_granted_once_are_those_the_walk_over_the_scopes_finds():
    """``allows`` looks the scope up in a set built with the credential: for
    every set of scopes (and one nobody defined), it answers as the walk of
    e68a117 did, and a credential made from another with other scopes
    (dataclasses.replace, a copy, a pickle) answers for its own."""
    import copy
    import dataclasses
    import itertools
    import pickle

    from lrs.auth import _IMPLIED

    names = sorted(SCOPES) + ["unknown/scope"]
    for size in range(len(names) + 1):
        for scopes in itertools.combinations(names, size):
            credential = cred(*scopes)
            for needed in names:
                walked = any(needed in _IMPLIED.get(scope, (scope,)) for scope in scopes)
                assert credential.allows(needed) == walked, (scopes, needed)
    reader = cred("statements/read")
    widened = dataclasses.replace(reader, scopes=frozenset({"all"}))
    assert widened.allows("define") and not reader.allows("define")
    narrowed = dataclasses.replace(cred("all"), scopes=frozenset({"statements/read/mine"}))
    assert not narrowed.allows("statements/read") and narrowed.allows("statements/read/mine")
    for same in (copy.copy(widened), pickle.loads(pickle.dumps(widened))):
        assert same.allows("define") and same == widened
