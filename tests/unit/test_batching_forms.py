"""Rows worked out before the head lock write the same bytes as under it."""

from __future__ import annotations

from typing import Any

from lrs.batching import AppendRequest, filter_keys, payload_parts, plan_group, statement_form
from lrs.eventlog import finalize_with_text, format_stored

from tests.unit.test_batching import EMPTY, NOW, ids, stmt

TEXT = format_stored(NOW)
AUTHORITY = {"objectType": "Agent", "account": {"homePage": "http://lrs.example.com", "name": "bench"}}


def with_authority(n: int, **extra: Any):
    s = stmt(n)
    s.body["authority"] = AUTHORITY
    s.body.update(extra)
    return s


def test_parts_join_to_the_stored_form_without_a_timestamp() -> None:
    body = with_authority(1).body
    parts = payload_parts(body)
    assert parts is not None and len(parts) == 3  # stored and timestamp
    assert TEXT.encode().join(parts) == finalize_with_text(body, TEXT)


def test_parts_join_to_the_stored_form_with_a_timestamp() -> None:
    body = with_authority(1, timestamp="2024-01-01T00:00:00Z", zeta={"stored": "x"}).body
    parts = payload_parts(body)
    assert parts is not None and len(parts) == 2
    assert TEXT.encode().join(parts) == finalize_with_text(body, TEXT)


def test_a_statement_containing_the_sentinel_is_encoded_under_the_lock() -> None:
    body = with_authority(1, result={"response": "\x00stored\x00"}).body
    assert payload_parts(body) is None
    form = statement_form(with_authority(1, result={"response": "a\x00stored\x00stored\x00"}))
    assert form.payload_parts is None


def test_a_plan_with_forms_writes_what_a_plan_without_them_writes() -> None:
    statements = [with_authority(n) for n in range(1, 5)]
    statements.append(with_authority(5, result={"response": "\x00stored\x00"}))
    forms = [statement_form(s) for s in statements]
    assert forms[0].filter_keys == filter_keys(statements[0])
    plain = plan_group([AppendRequest("t", statements)], [], EMPTY, NOW, ids())
    formed = plan_group([AppendRequest("t", statements, forms)], [], EMPTY, NOW, ids())
    assert [n.event for n in formed.new] == [n.event for n in plain.new]
    assert [n.form for n in formed.new] == forms
    assert formed.outcomes == plain.outcomes


def test_touched_rows_committed_after_the_first_lookup_win_and_void_their_targets() -> None:
    from dataclasses import replace

    from lrs.batching import merge_touched
    from tests.unit.test_batching import existing, stmt as plain

    target, other, voiding = existing(plain(1), 1), existing(plain(2), 2), existing(plain(3, voids=1), 4)
    newer_other = replace(other, position=3)
    merged = {r.statement_id: r for r in merge_touched([target, other], [newer_other, voiding])}
    assert merged[other.statement_id] == newer_other
    assert merged[target.statement_id] == replace(target, voided=True)
    assert merged[voiding.statement_id] == voiding
    assert merge_touched([target], []) == [target]
    # A voiding statement is never marked voided, even when a later one aims at it.
    aimed = existing(plain(5, voids=3), 5)
    merged = {r.statement_id: r for r in merge_touched([voiding], [aimed])}
    assert merged[voiding.statement_id].voided is False


def _filter_keys_by_sets(s) -> list[str]:
    """filter_keys as first written (sets and comprehensions), to compare with."""
    keys = ["A:" + k for k in s.actor_keys]
    direct = set(s.actor_keys)
    keys += ["a:" + k for k in s.related_agent_keys if k not in direct]
    keys += ["O:" + a for a in s.activity_ids]
    direct = set(s.activity_ids)
    keys += ["o:" + a for a in s.related_activity_ids if a not in direct]
    return keys + ["U:account:http://lrs.example.com|bench"]


def test_filter_keys_of_few_and_of_many_agents_and_activities() -> None:
    import msgspec

    members = [{"mbox": f"mailto:m{i}@example.com"} for i in range(12)]
    many = msgspec.structs.replace(
        with_authority(1),
        actor_keys=tuple(f"mbox:mailto:m{i}@example.com" for i in range(12)),
        related_agent_keys=tuple(f"mbox:mailto:m{i}@example.com" for i in range(14)),
        activity_ids=tuple(f"http://example.com/a{i}" for i in range(10)),
        related_activity_ids=tuple(f"http://example.com/a{i}" for i in range(13)),
    )
    many.body["actor"] = {"objectType": "Group", "member": members}
    few = msgspec.structs.replace(
        with_authority(2), actor_keys=("mbox:mailto:x@example.com",),
        related_agent_keys=("mbox:mailto:x@example.com", "mbox:mailto:y@example.com"),
        activity_ids=("http://example.com/a",), related_activity_ids=("http://example.com/a", "http://example.com/p"),
    )
    for s in (many, few, with_authority(3)):
        assert filter_keys(s) == _filter_keys_by_sets(s)
    assert filter_keys(few) == ["A:mbox:mailto:x@example.com", "a:mbox:mailto:y@example.com", "O:http://example.com/a",
                                "o:http://example.com/p", "U:account:http://lrs.example.com|bench"]
    assert len(filter_keys(many)) == 12 + 2 + 10 + 3 + 1
