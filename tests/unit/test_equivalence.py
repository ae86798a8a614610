"""The spec's Statement comparison (lrs.xapi.equivalence) and IFI keys."""

from __future__ import annotations

import copy
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lrs.xapi.equivalence import statements_equivalent
from lrs.xapi.identity import ifi_key

# -- strategies -------------------------------------------------------------------

_word = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=8)
_iri = _word.map(lambda w: f"http://example.com/{w}")
_uuid_text = st.uuids().map(str)
_lang_map = st.dictionaries(st.sampled_from(["en", "en-US", "fr", "de-CH"]), _word, min_size=1, max_size=3)

_ifi = st.one_of(
    st.tuples(_word, _word).map(lambda p: {"mbox": f"mailto:{p[0]}@{p[1]}.example.com"}),
    st.text(alphabet="0123456789abcdef", min_size=40, max_size=40).map(lambda h: {"mbox_sha1sum": h}),
    _iri.map(lambda i: {"openid": i}),
    st.tuples(_iri, _word).map(lambda p: {"account": {"homePage": p[0], "name": p[1]}}),
)


@st.composite
def agents(draw, object_type_required=False):
    agent = dict(draw(_ifi))
    if draw(st.booleans()):
        agent["name"] = draw(_word)
    if object_type_required or draw(st.booleans()):
        agent["objectType"] = "Agent"
    return agent


@st.composite
def groups(draw):
    group = {"objectType": "Group"}
    identified = draw(st.booleans())
    if identified:
        group.update(draw(_ifi))
    members = draw(st.lists(agents(), min_size=0 if identified else 1, max_size=4))
    if members or not identified:
        group["member"] = members
    if draw(st.booleans()):
        group["name"] = draw(_word)
    return group


actors = st.one_of(agents(), groups())


@st.composite
def activities(draw):
    activity = {"id": draw(_iri)}
    if draw(st.booleans()):
        activity["objectType"] = "Activity"
    if draw(st.booleans()):
        activity["definition"] = {"name": draw(_lang_map), "type": draw(_iri)}
    return activity


@st.composite
def verbs(draw):
    verb = {"id": draw(_iri)}
    if draw(st.booleans()):
        verb["display"] = draw(_lang_map)
    return verb


@st.composite
def contexts(draw):
    context = {}
    if draw(st.booleans()):
        context["registration"] = draw(_uuid_text)
    if draw(st.booleans()):
        context["instructor"] = draw(actors)
    if draw(st.booleans()):
        context["team"] = draw(groups())
    if draw(st.booleans()):
        kinds = draw(st.lists(st.sampled_from(["parent", "grouping", "category", "other"]), unique=True, min_size=1))
        context["contextActivities"] = {
            kind: draw(st.one_of(activities(), st.lists(activities(), min_size=1, max_size=3))) for kind in kinds
        }
    if draw(st.booleans()):
        context["platform"] = draw(_word)
    if draw(st.booleans()):
        context["extensions"] = {draw(_iri): draw(st.one_of(st.integers(), st.booleans(), _word))}
    return context


@st.composite
def results(draw):
    result = {}
    if draw(st.booleans()):
        result["score"] = {"scaled": draw(st.floats(-1, 1)), "raw": draw(st.integers(0, 100))}
    if draw(st.booleans()):
        result["success"] = draw(st.booleans())
    if draw(st.booleans()):
        result["duration"] = f"PT{draw(st.integers(0, 999))}.{draw(st.integers(0, 99)):02d}S"
    if draw(st.booleans()):
        result["response"] = draw(_word)
    return result


@st.composite
def statement_bodies(draw, sub=False):
    stmt = {"actor": draw(actors), "verb": draw(verbs())}
    choices = ["activity", "agent", "group", "ref"] + ([] if sub else ["sub"])
    kind = draw(st.sampled_from(choices))
    if kind == "activity":
        stmt["object"] = draw(activities())
    elif kind == "agent":
        stmt["object"] = draw(agents(object_type_required=True))
    elif kind == "group":
        stmt["object"] = draw(groups())
    elif kind == "ref":
        stmt["object"] = {"objectType": "StatementRef", "id": draw(_uuid_text)}
    else:
        sub_stmt = draw(statement_bodies(sub=True))
        sub_stmt["objectType"] = "SubStatement"
        stmt["object"] = sub_stmt
    if draw(st.booleans()):
        stmt["result"] = draw(results())
    if draw(st.booleans()):
        stmt["context"] = draw(contexts())
    if sub and draw(st.booleans()):
        stmt["timestamp"] = "2024-05-01T10:00:00.123Z"
    if not sub:
        for key, strategy in (
            ("id", _uuid_text),
            ("timestamp", st.just("2024-05-01T10:00:00Z")),
            ("stored", st.just("2024-05-01T10:00:01Z")),
            ("version", st.just("1.0.0")),
            ("authority", agents()),
        ):
            if draw(st.booleans()):
                stmt[key] = draw(strategy)
        if draw(st.booleans()):
            stmt["attachments"] = [
                {
                    "usageType": draw(_iri),
                    "display": draw(_lang_map),
                    "contentType": "text/plain",
                    "length": draw(st.integers(0, 1000)),
                    "sha2": "ab" * 32,
                }
            ]
    return stmt


# -- helpers ------------------------------------------------------------------------


def _shuffle_members(value, rnd: random.Random):
    """A copy with every Group member list shuffled, at any depth."""
    if isinstance(value, dict):
        out = {k: _shuffle_members(v, rnd) for k, v in value.items()}
        if isinstance(out.get("member"), list):
            rnd.shuffle(out["member"])
        return out
    if isinstance(value, list):
        return [_shuffle_members(v, rnd) for v in value]
    return value


_TOP_IGNORED = {"id", "authority", "stored", "timestamp", "version"}


def _compared_leaves(value, path=()):
    """Paths of scalar leaves that the comparison must look at."""
    if isinstance(value, dict):
        for key, child in value.items():
            if not path and key in _TOP_IGNORED:
                continue
            if key == "definition" or (key == "display" and path and path[-1] == "verb"):
                continue
            yield from _compared_leaves(child, path + (key,))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _compared_leaves(child, path + (index,))
    else:
        yield path


def _changed(value):
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 1
    return value + "x"


def _set(stmt, path, new):
    target = stmt
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = new


# -- properties ---------------------------------------------------------------------

_settings = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_settings
@given(statement_bodies())
def test_reflexive(stmt):
    assert statements_equivalent(stmt, stmt)
    assert statements_equivalent(stmt, copy.deepcopy(stmt))


@_settings
@given(statement_bodies(), statement_bodies())
def test_symmetric(a, b):
    assert statements_equivalent(a, b) == statements_equivalent(b, a)


@_settings
@given(statement_bodies(), st.randoms(use_true_random=False))
def test_member_order_is_ignored_at_any_depth(stmt, rnd):
    shuffled = _shuffle_members(stmt, rnd)
    assert statements_equivalent(stmt, shuffled)
    assert statements_equivalent(shuffled, stmt)


@_settings
@given(statement_bodies(), st.data())
def test_changing_a_compared_value_breaks_equivalence(stmt, data):
    paths = list(_compared_leaves(stmt))
    path = data.draw(st.sampled_from(paths))
    changed = copy.deepcopy(stmt)
    old = changed
    for step in path:
        old = old[step]
    _set(changed, path, _changed(old))
    assert not statements_equivalent(stmt, changed)
    assert not statements_equivalent(changed, stmt)


@_settings
@given(statement_bodies(), st.data())
def test_removing_a_compared_property_breaks_equivalence(stmt, data):
    paths = [p for p in _compared_leaves(stmt) if isinstance(p[-1], str)]
    path = data.draw(st.sampled_from(paths))
    changed = copy.deepcopy(stmt)
    parent = changed
    for step in path[:-1]:
        parent = parent[step]
    del parent[path[-1]]
    assert not statements_equivalent(stmt, changed)


@_settings
@given(statement_bodies(), _uuid_text, agents())
def test_lrs_assigned_properties_are_ignored(stmt, new_id, authority):
    changed = copy.deepcopy(stmt)
    changed["id"] = new_id
    changed["authority"] = authority
    changed["stored"] = "2030-01-01T00:00:00Z"
    changed["timestamp"] = "2031-01-01T00:00:00+05:00"
    changed["version"] = "1.0.3"
    assert statements_equivalent(stmt, changed)
    for key in ("id", "authority", "stored", "timestamp", "version"):
        changed.pop(key)
    assert statements_equivalent(stmt, changed)


@_settings
@given(statement_bodies())
def test_context_activities_single_and_one_element_array_are_equal(stmt):
    arrays = copy.deepcopy(stmt)
    for context in (arrays.get("context"), arrays["object"].get("context")):
        if context and "contextActivities" in context:
            for key, value in context["contextActivities"].items():
                if not isinstance(value, list):
                    context["contextActivities"][key] = [value]
    assert statements_equivalent(stmt, arrays)


# -- examples -------------------------------------------------------------------------


def _base(**extra):
    stmt = {
        "actor": {"mbox": "mailto:ana@example.com"},
        "verb": {"id": "http://adlnet.gov/expapi/verbs/attempted", "display": {"en-US": "attempted"}},
        "object": {"id": "http://example.com/a", "definition": {"name": {"en": "A"}}},
    }
    stmt.update(extra)
    return stmt


def test_verb_display_and_activity_definition_are_not_part_of_the_statement():
    a = _base()
    b = _base(verb={"id": "http://adlnet.gov/expapi/verbs/attempted"})
    b["object"] = {"id": "http://example.com/a", "definition": {"name": {"en": "renamed"}}}
    assert statements_equivalent(a, b)


def test_verb_id_matters():
    assert not statements_equivalent(_base(), _base(verb={"id": "http://example.com/other"}))


def test_mbox_domain_is_case_insensitive_but_local_part_is_not():
    upper_domain = _base(actor={"mbox": "mailto:ana@EXAMPLE.com"})
    assert statements_equivalent(_base(), upper_domain)
    upper_local = _base(actor={"mbox": "mailto:Ana@example.com"})
    assert not statements_equivalent(_base(), upper_local)


def test_sha1sum_hex_case_is_ignored():
    a = _base(actor={"mbox_sha1sum": "ebd31e95054c018b10727ccffd2ef2ec3a016ee9"})
    b = _base(actor={"mbox_sha1sum": "EBD31E95054C018B10727CCFFD2EF2EC3A016EE9"})
    assert statements_equivalent(a, b)


def test_object_type_presence_is_a_difference():
    a = _base()
    b = _base(actor={"objectType": "Agent", "mbox": "mailto:ana@example.com"})
    assert not statements_equivalent(a, b)


def test_member_multiplicity_matters():
    one = {"mbox": "mailto:x@example.com"}
    two = {"mbox": "mailto:y@example.com"}
    a = _base(actor={"objectType": "Group", "member": [one, two]})
    b = _base(actor={"objectType": "Group", "member": [one, one, two]})
    assert not statements_equivalent(a, b)


def test_members_of_context_team_and_substatement_are_unordered():
    one = {"mbox": "mailto:x@example.com"}
    two = {"account": {"homePage": "http://example.com", "name": "y"}}
    sub = {
        "objectType": "SubStatement",
        "actor": {"objectType": "Group", "member": [one, two]},
        "verb": {"id": "http://example.com/v"},
        "object": {"id": "http://example.com/b"},
        "context": {"team": {"objectType": "Group", "member": [one, two]}},
    }
    a = _base(object=sub, context={"instructor": {"objectType": "Group", "member": [one, two]}})
    flipped = copy.deepcopy(a)
    flipped["object"]["actor"]["member"].reverse()
    flipped["object"]["context"]["team"]["member"].reverse()
    flipped["context"]["instructor"]["member"].reverse()
    assert statements_equivalent(a, flipped)


def test_duration_precision_beyond_hundredths_is_ignored():
    a = _base(result={"duration": "PT1.234S"})
    b = _base(result={"duration": "PT1.23S"})
    c = _base(result={"duration": "PT1.24S"})
    assert statements_equivalent(a, b)
    assert not statements_equivalent(a, c)
    # Durations are strings: other spellings of the same length are different.
    assert not statements_equivalent(_base(result={"duration": "PT60S"}), _base(result={"duration": "PT1M"}))


def test_substatement_timestamp_compares_as_instant_to_the_millisecond():
    def with_sub_time(ts):
        return _base(
            object={
                "objectType": "SubStatement",
                "actor": {"mbox": "mailto:ana@example.com"},
                "verb": {"id": "http://example.com/v"},
                "object": {"id": "http://example.com/b"},
                "timestamp": ts,
            }
        )

    utc = with_sub_time("2024-05-01T10:00:00.123Z")
    assert statements_equivalent(utc, with_sub_time("2024-05-01T12:00:00.1234+02:00"))
    assert not statements_equivalent(utc, with_sub_time("2024-05-01T10:00:00.124Z"))


def test_booleans_differ_from_numbers_in_extensions():
    a = _base(result={"extensions": {"http://example.com/x": True}})
    b = _base(result={"extensions": {"http://example.com/x": 1}})
    assert not statements_equivalent(a, b)
    c = _base(result={"extensions": {"http://example.com/x": 1.0}})
    assert statements_equivalent(b, c)


def test_extension_object_key_order_is_ignored_but_array_order_is_not():
    a = _base(result={"extensions": {"http://example.com/x": {"p": 1, "q": [1, 2]}}})
    b = _base(result={"extensions": {"http://example.com/x": {"q": [1, 2], "p": 1}}})
    c = _base(result={"extensions": {"http://example.com/x": {"q": [2, 1], "p": 1}}})
    assert statements_equivalent(a, b)
    assert not statements_equivalent(a, c)


def test_uuid_case_is_ignored():
    ref = "e05aa883-acaf-40ad-bf54-02c8ce485fb0"
    a = _base(object={"objectType": "StatementRef", "id": ref}, context={"registration": ref})
    b = _base(object={"objectType": "StatementRef", "id": ref.upper()}, context={"registration": ref.upper()})
    assert statements_equivalent(a, b)


def test_2_0_context_agents_and_groups_are_compared():
    agent = {"mbox": "mailto:x@example.com"}
    group = {"objectType": "Group", "member": [agent, {"mbox": "mailto:y@example.com"}]}
    context = {
        "contextAgents": [{"objectType": "contextAgent", "agent": agent, "relevantTypes": ["http://example.com/t"]}],
        "contextGroups": [{"objectType": "contextGroup", "group": group}],
    }
    a = _base(context=context)
    shuffled = copy.deepcopy(a)
    shuffled["context"]["contextGroups"][0]["group"]["member"].reverse()
    assert statements_equivalent(a, shuffled)
    other = copy.deepcopy(a)
    other["context"]["contextAgents"][0]["agent"] = {"mbox": "mailto:z@example.com"}
    assert not statements_equivalent(a, other)


def test_attachments_are_compared_with_language_tags_case_insensitive():
    att = {"usageType": "http://example.com/u", "display": {"en-US": "x"}, "contentType": "text/plain",
           "length": 1, "sha2": "AB" * 32}
    a = _base(attachments=[att])
    b = _base(attachments=[{**att, "display": {"en-us": "x"}, "sha2": "ab" * 32}])
    c = _base(attachments=[{**att, "length": 2}])
    assert statements_equivalent(a, b)
    assert not statements_equivalent(a, c)


# -- ifi_key --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("actor", "key"),
    [
        ({"mbox": "mailto:a@b.c"}, "mbox:mailto:a@b.c"),
        ({"objectType": "Agent", "mbox_sha1sum": "ABCDEF0123"}, "mbox_sha1sum:abcdef0123"),
        ({"openid": "http://id.example.com/a"}, "openid:http://id.example.com/a"),
        ({"account": {"homePage": "http://lms.example.com", "name": "42"}}, "account:http://lms.example.com|42"),
        ({"objectType": "Group", "mbox": "mailto:g@b.c", "member": [{"mbox": "mailto:a@b.c"}]}, "mbox:mailto:g@b.c"),
        ({"objectType": "Group", "member": [{"mbox": "mailto:a@b.c"}]}, None),
    ],
)
def test_ifi_key(actor, key):
    assert ifi_key(actor) == key
