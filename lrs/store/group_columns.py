"""The parameters of a group's write (:data:`lrs.store.group_commit_sql.INSERT_GROUP`):
one array per column, as :func:`lrs.batching.plan_group` laid the group out."""

from __future__ import annotations

from lrs.batching import AUTHORITY_KEY, AppendRequest, GroupPlan, filter_keys
from lrs.documents.activities import DefinitionUpdate, definition_updates, drop_repeated_definitions
from lrs.eventlog import ONE_MICROSECOND, STATEMENT_EVENT
from lrs.payload_codec import store_payloads
from lrs.xapi.identity import authority_key


def group_definition_updates(requests: list[AppendRequest], plan: GroupPlan) -> list[DefinitionUpdate]:
    """The Activity Definitions in the accepted statements of defining requests."""
    defining = {id(s) for request in requests if request.defines for s in request.statements}
    if not defining:
        return []
    updates = definition_updates(
        (new.event.tenant, new.statement.body, new.event.position)
        for new in plan.new
        if id(new.statement) in defining
    )
    return drop_repeated_definitions(updates)



def group_columns(plan: GroupPlan) -> tuple[object, ...]:
    """The parameters of INSERT_GROUP: one array per column, and one value
    for what the events' place in the log gives (see INSERT_GROUP)."""
    events = [n.event for n in plan.new]
    statements = [n.statement for n in plan.new]
    assert plan.head is not None
    first, last = events[0], events[-1]
    # plan_group's layout, which INSERT_GROUP rebuilds: consecutive positions,
    # stored one microsecond apart, each prev_hash the hash before it.
    # Positions and stored rise strictly, so the ends decide them.
    count = len(events)
    hashes = [e.hash for e in events]
    if (
        last.position - first.position != count - 1
        or last.stored - first.stored != (count - 1) * ONE_MICROSECOND
        or [e.prev_hash for e in events[1:]] != hashes[:-1]
        or [e.event_type for e in events].count(STATEMENT_EVENT) != count
    ):
        raise RuntimeError("the group's events are not laid out as INSERT_GROUP writes them")
    return (
        first.position,
        [e.event_id for e in events],
        [e.tenant for e in events],
        STATEMENT_EVENT,
        [e.statement_id for e in events],
        first.stored,
        store_payloads([e.payload for e in events]),
        first.prev_hash,
        hashes,
        [s.verb_id for s in statements],
        [n.form.filter_keys if n.form is not None else array_literal(filter_keys(n.statement))
         for n in plan.new],
        [s.registration for s in statements],
        [n.voided for n in plan.new],
        [s.voids for s in statements],
        [s.statement_ref for s in statements],
        plan.head.position,
        plan.head.hash,
        plan.head.stored,
    )


def authority_keys(plan: GroupPlan) -> list[str | None]:
    """Each new statement's 'U:' key (statements.authority_key is its hash)."""
    keys = []
    for new in plan.new:
        authority = authority_key(new.statement.body["authority"])
        keys.append(None if authority is None else AUTHORITY_KEY + authority)
    return keys


def array_literal(values: list[str]) -> str:
    """A text[] literal: every element double-quoted, backslash and quote escaped."""
    if not values:
        return "{}"
    text = '","'.join(values)
    if '"' in text or "\\" in text:
        text = '","'.join(v.replace("\\", "\\\\").replace('"', '\\"') for v in values)
    return '{"' + text + '"}'
