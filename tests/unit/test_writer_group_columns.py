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
from tests.unit.test_batching import NOW, ids
from tests.unit.test_batching_forms import with_authority as stmt


def _rows_as_insert_group_writes_them(columns: tuple) -> list[tuple]:
    """(position, event_type, stored, prev_hash, hash) per event, the way
    INSERT_GROUP derives them from its parameters."""
    first_position, event_type, first_stored, first_prev, hashes = (
        columns[0], columns[3], columns[5], columns[7], columns[8]
    )
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
