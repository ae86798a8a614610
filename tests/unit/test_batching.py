"""The group-commit decision: each request decided on its own, in order."""

from __future__ import annotations

import itertools
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import msgspec

from lrs.batching import (
    AppendRequest,
    ExistingStatement,
    LogHead,
    plan_group,
)
from lrs.eventlog import GENESIS_HASH, format_stored, verify_chain
from lrs.ingest.model import PreparedStatement
from lrs.xapi.errors import ConflictError, XapiError

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
VOIDED = "http://adlnet.gov/expapi/verbs/voided"
EMPTY = LogHead(0, GENESIS_HASH, None)


def sid(n: int) -> uuid.UUID:
    return uuid.UUID(int=n)


def stmt(n: int, activity: str = "http://example.com/a", *, voids: int | None = None) -> PreparedStatement:
    body: dict[str, Any] = {
        "id": str(sid(n)),
        "actor": {"mbox": "mailto:learner@example.com"},
        "verb": {"id": VOIDED if voids is not None else "http://example.com/v"},
        "object": (
            {"objectType": "StatementRef", "id": str(sid(voids))}
            if voids is not None else {"id": activity}
        ),
    }
    return PreparedStatement(
        statement_id=sid(n), body=body, has_timestamp=False,
        voids=sid(voids) if voids is not None else None,
        verb_id=body["verb"]["id"], actor_keys=("mbox:mailto:learner@example.com",),
        related_agent_keys=("mbox:mailto:learner@example.com",),
        activity_ids=() if voids is not None else (activity,),
        related_activity_ids=() if voids is not None else (activity,),
        registration=None, statement_ref=sid(voids) if voids is not None else None,
    )


def existing(s: PreparedStatement, position: int, *, voided: bool = False) -> ExistingStatement:
    return ExistingStatement("t", s.statement_id, dict(s.body), s.voids, voided,
                             NOW - timedelta(days=1), position)


def ids() -> Any:
    counter = itertools.count(1000)
    return lambda: uuid.UUID(int=next(counter))


def plan(requests: list[list[PreparedStatement]], known: list[ExistingStatement] = (), head: LogHead = EMPTY):  # type: ignore[assignment]
    return plan_group([AppendRequest("t", r) for r in requests], list(known), head, NOW, ids())


def test_new_statements_get_consecutive_positions_rising_stored_and_a_chain() -> None:
    p = plan([[stmt(1), stmt(2)], [stmt(3)]])
    assert [r.position for o in p.outcomes for r in o] == [1, 2, 3]  # type: ignore[union-attr]
    stored = [n.event.stored for n in p.new]
    assert stored[0] == NOW and stored[0] < stored[1] < stored[2]
    assert all(r.inserted for o in p.outcomes for r in o)  # type: ignore[union-attr]
    assert verify_chain([n.event for n in p.new]) is None
    assert p.head == LogHead(3, p.new[-1].event.hash, stored[-1])
    assert msgspec.json.decode(p.new[0].event.payload)["stored"] == "2024-05-01T12:00:00.000000Z"


def test_stored_never_goes_below_the_head() -> None:
    later = NOW + timedelta(seconds=5)
    p = plan([[stmt(1)]], head=LogHead(7, b"\x01" * 32, later))
    assert p.new[0].event.position == 8
    assert p.new[0].event.prev_hash == b"\x01" * 32
    assert p.new[0].event.stored == later + timedelta(microseconds=1)


def test_stored_texts_follow_each_microsecond_across_a_second_and_a_zone() -> None:
    # The stored text of consecutive statements is built from the one before
    # it within a second; over a second's end, and for a clock in a zone
    # whose offset has a fraction of a second (so its seconds end at other
    # times than UTC's), each must still be format_stored of its own time.
    almost = datetime(2024, 12, 31, 23, 59, 59, 999_998, tzinfo=timezone.utc)
    elsewhere = almost.astimezone(timezone(timedelta(hours=5, microseconds=250)))
    for now in (almost, elsewhere):
        p = plan_group([AppendRequest("t", [stmt(i) for i in range(1, 6)])], [], EMPTY, now, ids())
        stored = [n.event.stored for n in p.new]
        assert stored == [almost + timedelta(microseconds=i) for i in range(5)]
        texts = [msgspec.json.decode(n.event.payload)["stored"] for n in p.new]
        assert texts == [format_stored(moment) for moment in stored]
        assert texts[2] == "2025-01-01T00:00:00.000000Z"
        assert verify_chain([n.event for n in p.new]) is None


def test_conflict_fails_only_its_own_request() -> None:
    stored_one = stmt(1)
    different = stmt(1, "http://example.com/other")
    p = plan([[stmt(2)], [stmt(3), different], [stmt(4)]], [existing(stored_one, 1)], LogHead(1, b"h" * 32, NOW))
    assert isinstance(p.outcomes[1], ConflictError)
    assert p.outcomes[1].path == "$[1].id"
    assert [n.statement.statement_id for n in p.new] == [sid(2), sid(4)]  # nothing of request 2
    assert [r.position for r in p.outcomes[2]] == [3]  # type: ignore[union-attr]


def test_equivalent_duplicate_is_a_no_op_with_the_stored_result() -> None:
    s = stmt(1)
    p = plan([[s, stmt(2)]], [existing(s, 5)], LogHead(5, b"h" * 32, NOW))
    first, second = p.outcomes[0]  # type: ignore[misc]
    assert not first.inserted and first.position == 5 and first.stored == NOW - timedelta(days=1)
    assert second.inserted and second.position == 6
    assert [n.statement.statement_id for n in p.new] == [sid(2)]


def test_duplicates_across_requests_in_one_group() -> None:
    p = plan([[stmt(1)], [stmt(1)], [stmt(1, "http://example.com/other")]])
    assert p.outcomes[0][0].inserted  # type: ignore[index]
    again = p.outcomes[1][0]  # type: ignore[index]
    assert not again.inserted and again.position == 1
    assert isinstance(p.outcomes[2], ConflictError)
    assert len(p.new) == 1


def test_failed_request_leaves_no_trace_for_later_requests() -> None:
    # Request 1 fails (conflict on its second statement); its first statement
    # (id 2) must not count as stored for request 2.
    p = plan([[stmt(2), stmt(1, "http://example.com/other")], [stmt(2, "http://example.com/b")]],
             [existing(stmt(1), 1)], LogHead(1, b"h" * 32, NOW))
    assert isinstance(p.outcomes[0], ConflictError)
    assert p.outcomes[1][0].inserted  # type: ignore[index]


def test_voiding_a_stored_statement_marks_it() -> None:
    target = stmt(1)
    p = plan([[stmt(2, voids=1)]], [existing(target, 1)], LogHead(1, b"h" * 32, NOW))
    assert p.newly_voided == [("t", sid(1))]
    assert not p.new[0].voided  # a voiding statement is never voided


def test_voiding_a_voiding_statement_is_a_400_for_that_request_only() -> None:
    voider = stmt(2, voids=1)
    p = plan([[stmt(3, voids=2)], [stmt(4)]], [existing(voider, 2)], LogHead(2, b"h" * 32, NOW))
    assert isinstance(p.outcomes[0], XapiError) and p.outcomes[0].status == 400
    assert p.outcomes[0].path == "$[0].object.id"
    assert [n.statement.statement_id for n in p.new] == [sid(4)]
    # Also when the voiding statement arrives earlier in the same group.
    p = plan([[stmt(2, voids=1)], [stmt(3, voids=2)]])
    assert isinstance(p.outcomes[1], XapiError) and p.outcomes[1].status == 400


def test_statement_arriving_after_its_voider_is_stored_voided() -> None:
    p = plan([[stmt(1)]], [existing(stmt(2, voids=1), 1)], LogHead(1, b"h" * 32, NOW))
    assert p.new[0].voided
    # In the same group and in the same request, in either order.
    p = plan([[stmt(2, voids=1)], [stmt(1)]])
    assert [n.voided for n in p.new] == [False, True]
    p = plan([[stmt(1), stmt(2, voids=1)]])
    assert [n.voided for n in p.new] == [True, False]
    assert p.newly_voided == []


def test_voiding_within_a_failed_request_has_no_effect() -> None:
    p = plan([[stmt(2, voids=1), stmt(3, "http://example.com/other")]],
             [existing(stmt(1), 1), existing(stmt(3), 2)], LogHead(2, b"h" * 32, NOW))
    assert isinstance(p.outcomes[0], ConflictError)
    assert p.newly_voided == [] and p.new == [] and p.head is None


def test_only_duplicates_leave_the_head_alone() -> None:
    s = stmt(1)
    p = plan([[s]], [existing(s, 1)], LogHead(1, b"h" * 32, NOW))
    assert p.head is None and p.new == []
