"""Roster loads as events, and the membership history they fold to (projections/units/history.py)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from projections.units.history import (
    LEARNERS_PER_EVENT,
    RosterFold,
    current_view,
    parse_roster_payload,
    plan_memberships,
    roster_payloads,
)
from projections.units.roster import Membership, Roster, Unit

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)


def day(n: int) -> datetime:
    return T0 + timedelta(days=n)


def m(learner: str, unit: str, start: int, end: int | None = None) -> Membership:
    return Membership(learner, unit, day(start), None if end is None else day(end))


def test_payloads_round_trip_and_split_by_learner_under_the_message_size() -> None:
    units = (Unit("mic", None, "ministry", "Ministry"), Unit("mic-a", "mic", "agency", "Agency A"))
    memberships = tuple(m(f"mbox:mailto:{i}@x.org", "mic-a", 0, 10 if i % 2 else None) for i in range(2 * LEARNERS_PER_EVENT + 5))
    payloads = roster_payloads(Roster(units, memberships))
    assert len(payloads) == 3 and all(len(p) < 512_000 for p in payloads)
    parts = [parse_roster_payload(p) for p in payloads]
    assert parts[0].units == units and parts[1].units == parts[2].units == ()
    assert {x for part in parts for x in part.memberships} == set(memberships)
    assert sum(len(part.memberships) for part in parts) == len(memberships)
    assert roster_payloads(Roster(units, memberships)) == payloads  # canonical bytes


def test_a_load_that_moves_a_learner_records_the_end_of_the_old_membership_instead_of_erasing_it() -> None:
    current = {"a": [m("a", "u1", 0)]}
    superseded, recorded = plan_memberships(current, Roster((), (m("a", "u2", 100),)))
    assert superseded == [m("a", "u1", 0)]
    assert recorded == [m("a", "u1", 0, 100), m("a", "u2", 100)]


def test_a_retroactive_end_supersedes_the_open_membership() -> None:
    superseded, recorded = plan_memberships({"a": [m("a", "u1", 0)]}, Roster((), (m("a", "u1", 0, 50),)))
    assert (superseded, recorded) == ([m("a", "u1", 0)], [m("a", "u1", 0, 50)])


def test_the_same_membership_again_changes_nothing_and_later_ones_are_replaced() -> None:
    current = {"a": [m("a", "u1", 0, 100), m("a", "u2", 100, 200), m("a", "u3", 200)]}
    assert plan_memberships(current, Roster((), (m("a", "u1", 0, 100),))) == (
        [m("a", "u2", 100, 200), m("a", "u3", 200)], []
    )
    superseded, recorded = plan_memberships(current, Roster((), (m("a", "u9", 150),)))
    assert superseded == [m("a", "u2", 100, 200), m("a", "u3", 200)]
    assert recorded == [m("a", "u2", 100, 150), m("a", "u9", 150)]


def test_the_fold_keeps_superseded_rows_with_the_event_that_superseded_them() -> None:
    fold = RosterFold()
    fold.add(1, day(0), "t", roster_payloads(Roster((Unit("u1", None, "ministry", "U1"),), (m("a", "u1", 0),)))[0])
    fold.add(2, day(60), "t", roster_payloads(Roster((), (m("a", "u1", 0, 50),)))[0])
    rows = sorted(fold.membership_rows(), key=lambda r: r[5])
    assert [(r[3], r[4], r[5], r[7]) for r in rows] == [(day(0), None, 1, 2), (day(0), day(50), 2, None)]
    assert current_view(fold.records) == [m("a", "u1", 0, 50)]
    assert fold.unit_rows() == [("t", "u1", None, "ministry", "U1")]


memberships = st.builds(
    lambda learner, unit, start, length: m(learner, unit, start, None if length == 0 else start + length),
    st.sampled_from(["a", "b"]), st.sampled_from(["u1", "u2"]), st.integers(0, 20), st.integers(0, 10),
)


def _timeline(items: list[Membership]) -> list[Membership]:
    """Non-overlapping memberships of one roster (a learner at one unit at a time), as a valid load."""
    kept: list[Membership] = []
    for item in sorted(items, key=lambda x: x.valid_from):
        mine = [k for k in kept if k.learner == item.learner]
        if all(k.valid_to is not None and k.valid_to <= item.valid_from for k in mine):
            kept.append(item)
    return kept


@settings(max_examples=200, deadline=None)
@given(loads=st.lists(st.lists(memberships, min_size=1, max_size=4), min_size=1, max_size=5))
def test_current_memberships_never_overlap_and_history_only_grows(loads: list[list[Membership]]) -> None:
    fold = RosterFold()
    seen = 0
    for position, load in enumerate(loads, start=1):
        fold.add(position, day(100 + position), "t", roster_payloads(Roster((), tuple(_timeline(load))))[0])
        assert len(fold.records) >= seen  # nothing is erased
        seen = len(fold.records)
        for learner in ("a", "b"):
            mine = sorted((x for x in current_view(fold.records) if x.learner == learner), key=lambda x: x.valid_from)
            for before, after in zip(mine, mine[1:]):
                assert before.valid_to is not None and before.valid_to <= after.valid_from
