"""The group INSERT's parameters: the events' place in the log is sent once
per group, and INSERT_GROUP lays each row out from it again."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import msgspec
import pytest

from lrs.batching import LogHead, plan_group, AppendRequest
from lrs.eventlog import STATEMENT_EVENT
from lrs.store.group_columns import group_columns
from lrs.xapi.identity import authority_key
from tests.unit.test_batching import NOW, ids
from tests.unit.test_batching_forms import with_authority as stmt


def _rows_as_insert_group_writes_them(columns: tuple) -> list[tuple]:
    """(position, event_type, stored, prev_hash, hash) per event, the way
    INSERT_GROUP derives them from its parameters."""
    first_position, event_type, first_stored, first_prev, hash_blob = (
        columns[0], columns[3], columns[5], columns[7], columns[8]
    )
    hashes = [hash_blob[i:i + 32] for i in range(0, len(hash_blob), 32)]
    prevs = [first_prev, *hashes[:-1]]
    return [
        (first_position + n, event_type, first_stored + n * timedelta(microseconds=1), prevs[n], hashes[n])
        for n in range(len(hashes))
    ]


@pytest.mark.parametrize("head_stored", [None, NOW - timedelta(seconds=1), NOW + timedelta(seconds=3)])
def test_rows_derived_from_the_group_values_are_the_planned_events(head_stored) -> None:
    head = LogHead(41, b"\x07" * 32, head_stored)
    requests = [AppendRequest("t", [stmt(1), stmt(2)]), AppendRequest("u", [stmt(3)]), AppendRequest("t", [stmt(4)])]
    plan = plan_group(requests, [], head, NOW, ids())
    columns = group_columns(plan)
    planned = [(e.position, e.event_type, e.stored, e.prev_hash, e.hash) for e in (n.event for n in plan.new)]
    assert _rows_as_insert_group_writes_them(columns) == planned
    assert columns[0] == 42 and columns[3] == STATEMENT_EVENT and columns[7] == b"\x07" * 32
    assert columns[2] == ["t", "t", "u", "t"]
    assert columns[1] == [n.event.event_id for n in plan.new]
    assert columns[4] == [n.event.statement_id for n in plan.new]


def test_one_tenant_is_sent_once_and_empty_columns_as_null() -> None:
    """INSERT_GROUP reads $3[1] for every row when the tenants array is
    shorter than the group, and NULL arrays as no registration, not voided,
    voiding nothing, referring to nothing."""
    requests = [AppendRequest("t", [stmt(1), stmt(2)]), AppendRequest("t", [stmt(3)])]
    columns = group_columns(plan_group(requests, [], LogHead(0, b"\0" * 32, None), NOW, ids()))
    assert columns[2] == ["t"]
    assert columns[11:15] == (None, None, None, None)


def test_a_plan_not_laid_out_as_the_insert_writes_it_is_refused() -> None:
    plan = plan_group([AppendRequest("t", [stmt(1), stmt(2), stmt(3)])], [], LogHead(0, b"\0" * 32, None), NOW, ids())
    gap = msgspec.structs.replace(plan.new[2].event, stored=plan.new[2].event.stored + timedelta(microseconds=1))
    broken = dataclasses.replace(plan, new=[*plan.new[:2], msgspec.structs.replace(plan.new[2], event=gap)])
    with pytest.raises(RuntimeError, match="not laid out"):
        group_columns(broken)
    unchained = msgspec.structs.replace(plan.new[1].event, prev_hash=b"\x09" * 32)
    broken = dataclasses.replace(plan, new=[plan.new[0], msgspec.structs.replace(plan.new[1], event=unchained), plan.new[2]])
    with pytest.raises(RuntimeError, match="not laid out"):
        group_columns(broken)
    other = msgspec.structs.replace(plan.new[0].event, event_type="roster")
    broken = dataclasses.replace(plan, new=[msgspec.structs.replace(plan.new[0], event=other), *plan.new[1:]])
    with pytest.raises(RuntimeError, match="not laid out"):
        group_columns(broken)


def test_authority_keys_go_once_when_the_group_has_one_authority() -> None:
    from lrs.store.group_columns import authority_keys

    one = plan_group([AppendRequest("t", [stmt(1), stmt(2)])], [], LogHead(0, b"\0" * 32, None), NOW, ids())
    assert authority_keys(one) == ["U:" + authority_key(one.new[0].statement.body["authority"])]
    other = {"objectType": "Agent", "mbox": "mailto:other@example.com"}
    second = msgspec.structs.replace(stmt(3), body={**stmt(3).body, "authority": other})
    two = plan_group([AppendRequest("t", [stmt(1), second, stmt(2)])], [], LogHead(0, b"\0" * 32, None), NOW, ids())
    keys = authority_keys(two)
    assert keys == ["U:" + authority_key(n.statement.body["authority"]) for n in two.new]
    assert keys[1] == "U:mbox:mailto:other@example.com" != keys[0]


def test_authority_key_of_follows_the_object_it_is_given() -> None:
    from lrs.batching import authority_key_of

    first = {"objectType": "Agent", "mbox": "mailto:a@example.com"}
    second = {"objectType": "Agent", "mbox": "mailto:b@example.com"}
    assert [authority_key_of(a) for a in (first, first, second, first)] == [
        "mbox:mailto:a@example.com", "mbox:mailto:a@example.com", "mbox:mailto:b@example.com",
        "mbox:mailto:a@example.com"]


def test_the_key_rows_sent_leave_out_the_authority_key_and_only_it() -> None:
    """statement_keys holds no authority key ('U:'), and INSERT_GROUP no longer
    tests each key for one: the literal leaves it out, filter_keys having put
    it last; a statement without one keeps every key."""
    from lrs.batching import AUTHORITY_KEY, filter_keys
    from lrs.store.group_columns import key_literal

    statement = stmt(1)
    keys = filter_keys(statement)
    assert keys[-1].startswith(AUTHORITY_KEY) and sum(k.startswith(AUTHORITY_KEY) for k in keys) == 1
    assert key_literal(keys) == '{"' + '","'.join(keys[:-1]) + '"}'
    assert key_literal(keys[:-1]) == key_literal(keys)
    plan = plan_group([AppendRequest("t", [statement])], [], LogHead(0, b"\0" * 32, None), NOW, ids())
    assert group_columns(plan)[10] == [key_literal(keys)]


def test_the_key_rows_sent_leave_out_the_related_agent_key_of_an_agent_authority() -> None:
    """An Agent authority's related agent key ('a:' and its IFI key) is found
    by statements.authority_key ('U:' and the same key): the literal leaves
    it out.  An OAuth Group authority's key names no agent, so its members'
    'a:' keys stay, and so does an authority that is also the actor ('A:')."""
    from lrs.batching import filter_keys
    import uuid

    from lrs.ingest.prepare import prepare_statements
    from lrs.store.group_columns import key_literal

    agent = {"objectType": "Agent", "mbox": "mailto:app@example.com"}
    oauth = {"objectType": "Group", "member": [agent, {"mbox": "mailto:user@example.com"}]}
    body = {"actor": {"mbox": "mailto:ann@example.com"}, "verb": {"id": "http://example.com/v"},
            "object": {"id": "http://example.com/a"},
            "context": {"instructor": {"mbox": "mailto:bob@example.com"}}}

    def sent(authority: dict, **fields: object) -> list[str]:
        [statement] = prepare_statements([{**body, **fields}], version="1.0.3", authority=authority,
                                         new_id=uuid.uuid4)
        literal = key_literal(filter_keys(statement))
        return literal[2:-2].split('","')

    assert sent(agent) == ["A:mbox:mailto:ann@example.com", "a:mbox:mailto:bob@example.com", "O:http://example.com/a"]
    assert sent(oauth) == ["A:mbox:mailto:ann@example.com", "a:mbox:mailto:app@example.com",
                           "a:mbox:mailto:user@example.com", "a:mbox:mailto:bob@example.com", "O:http://example.com/a"]
    assert sent(agent, actor=agent) == ["A:mbox:mailto:app@example.com", "a:mbox:mailto:bob@example.com",
                                        "O:http://example.com/a"]


def _defining(n: int, activity: str, name: str):
    s = stmt(n)
    s.body["object"] = {"objectType": "Activity", "id": activity, "definition": {"name": {"en": name}}}
    s.body["context"] = {"contextActivities": {"parent": [
        {"id": "http://example.com/course", "definition": {"name": {"en": "Course"}}}]}}
    return s


def test_definitions_walked_once_give_the_updates_walked_again(monkeypatch) -> None:
    """The writer walks each statement's Activities once a group
    (defined_activities, before the head lock) for the slots it locks and
    the updates it merges: the updates are those of a second walk, and
    none is made."""
    from lrs.store import group_columns as columns_module
    from lrs.store.activities import definition_slots
    from lrs.store.group_columns import defined_activities, group_definition_updates

    requests = [
        AppendRequest("t", [_defining(1, "http://example.com/a", "A"), _defining(2, "http://example.com/a", "A2")],
                      defines=True),
        AppendRequest("u", [_defining(3, "http://example.com/b", "B")]),  # not a definer
        AppendRequest("u", [_defining(4, "http://example.com/a", "A")], defines=True),
    ]
    plan = plan_group(requests, [], LogHead(0, b"\0" * 32, None), NOW, ids())
    walked_again = group_definition_updates(requests, plan)
    defined = defined_activities(requests)
    slots = definition_slots((r.tenant, defined[id(s)]) for r in requests if r.defines for s in r.statements)

    def no_walk(_statement):
        raise AssertionError("walked again")

    monkeypatch.setattr(columns_module, "activity_definitions_in", no_walk)
    assert group_definition_updates(requests, plan, defined) == walked_again
    assert [(u.tenant, u.activity_id, u.definition["name"]["en"], u.position) for u in walked_again] == [
        ("t", "http://example.com/a", "A", 1), ("t", "http://example.com/course", "Course", 1),
        ("t", "http://example.com/a", "A2", 2),
        ("u", "http://example.com/a", "A", 4), ("u", "http://example.com/course", "Course", 4),
    ]
    assert slots == [("t", "http://example.com/a"), ("t", "http://example.com/course"),
                     ("u", "http://example.com/a"), ("u", "http://example.com/course")]


def _old_group_definition_updates(requests, plan):
    """The walk of e68a117: each accepted statement of a definer walked after planning."""
    from lrs.documents.activities import DefinitionUpdate, activity_definitions_in, drop_repeated_definitions

    defining = {id(s) for request in requests if request.defines for s in request.statements}
    return drop_repeated_definitions([
        DefinitionUpdate(new.event.tenant, activity_id, definition, new.event.position)
        for new in plan.new if id(new.statement) in defining
        for activity_id, definition in activity_definitions_in(new.statement.body)
    ])


def test_definitions_walked_before_the_lock_merge_as_the_walk_after_planning_did() -> None:
    """Two statements of one group defining the same Activity differently,
    with a voiding statement, an accepted duplicate and a request refused
    mid-group (a conflicting duplicate) between them: the updates, their
    order and the canonical definitions folded from them are those of the
    walk after planning (e68a117)."""
    from lrs.documents.activities import fold_definitions
    from lrs.store.group_columns import defined_activities, group_definition_updates
    from tests.unit.test_batching import existing, stmt as plain

    a = "http://example.com/a"
    first = _defining(1, a, "A1")
    first.body["object"]["definition"]["type"] = "http://example.com/t1"
    known = _defining(7, a, "stored")
    conflicting = msgspec.structs.replace(known, body={**known.body, "verb": {"id": "http://example.com/other"}})
    second = _defining(5, a, "A2")
    second.body["object"]["definition"]["description"] = {"en": "second"}
    requests = [
        AppendRequest("t", [first], defines=True),
        AppendRequest("t", [plain(9, voids=8)], defines=True),  # voids a stored statement
        AppendRequest("t", [known], defines=True),  # an identical duplicate: accepted, not inserted
        AppendRequest("t", [conflicting, _defining(6, a, "refused")], defines=True),  # refused whole
        AppendRequest("t", [second, _defining(10, a, "A1")], defines=True),
    ]
    stored = [existing(plain(8), 3), existing(known, 4)]
    plan = plan_group(requests, stored, LogHead(4, b"\0" * 32, None), NOW, ids())
    assert [type(o).__name__ for o in plan.outcomes][3] == "ConflictError"
    new = group_definition_updates(requests, plan, defined_activities(requests))
    old = _old_group_definition_updates(requests, plan)
    assert new == old
    assert [(u.definition["name"]["en"], u.position) for u in new if u.activity_id == a] == [
        ("A1", 5), ("A2", 7), ("A1", 8)]
    assert fold_definitions({}, new) == fold_definitions({}, old)
