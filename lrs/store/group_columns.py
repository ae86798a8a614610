"""The parameters of a group's write (:data:`lrs.store.group_commit_sql.INSERT_GROUP`):
one array per column, as :func:`lrs.batching.plan_group` laid the group out."""

from __future__ import annotations

from typing import Any

from lrs.batching import AUTHORITY_KEY, RELATED_AGENT_KEY, AppendRequest, GroupPlan, authority_key_of, filter_keys
from lrs.documents.activities import DefinitionUpdate, activity_definitions_in, drop_repeated_definitions
from lrs.eventlog import ONE_MICROSECOND, STATEMENT_EVENT
from lrs.payload_codec import store_payloads


Defined = dict[int, list[tuple[str, dict[str, Any]]]]


def defined_activities(requests: list[AppendRequest]) -> Defined:
    """The ``(activity id, definition)`` pairs in each statement of the
    defining requests, by the statement's ``id()``: walked once a group,
    before the head lock, for both the definitions the group locks and
    those it merges."""
    return {id(s): activity_definitions_in(s.body) for request in requests if request.defines for s in request.statements}


def group_definition_updates(
    requests: list[AppendRequest], plan: GroupPlan, defined: Defined | None = None
) -> list[DefinitionUpdate]:
    """The Activity Definitions in the accepted statements of defining
    requests (``defined``: :func:`defined_activities` of ``requests``, if
    already worked out), in log order."""
    if defined is None:
        defined = defined_activities(requests)
    if not defined:
        return []
    updates = [
        DefinitionUpdate(new.event.tenant, activity_id, definition, new.event.position)
        for new in plan.new
        for activity_id, definition in defined.get(id(new.statement), ())
    ]
    return drop_repeated_definitions(updates)



# A SHA-256 digest, as INSERT_GROUP cuts the hashes out of one bytea.
HASH_SIZE = 32


def group_columns(plan: GroupPlan) -> tuple[object, ...]:
    """The parameters of INSERT_GROUP: one value for what the events' place in
    the log gives, the hashes in one bytea (32 bytes each, one after the
    other), the tenants once when they are all one, the nearly always empty
    columns (registration, voided, voids, statement_ref) as NULL when they
    are, and one array for each of the other columns (see INSERT_GROUP).
    asyncpg encodes every element of an array parameter on its own, a bytea
    as one copy."""
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
    tenant = first.tenant
    tenants = [e.tenant for e in events]
    if tenants.count(tenant) == count:
        tenants = [tenant]  # one tenant: INSERT_GROUP takes $3[1] for every row
    hash_blob = b"".join(hashes)
    if len(hash_blob) != HASH_SIZE * count:
        raise RuntimeError("the group's hashes are not all SHA-256 digests")
    registrations = [s.registration for s in statements]
    voided = [n.voided for n in plan.new]
    voids = [s.voids for s in statements]
    refs = [s.statement_ref for s in statements]
    return (
        first.position,
        [e.event_id for e in events],
        tenants,
        STATEMENT_EVENT,
        [e.statement_id for e in events],
        first.stored,
        store_payloads([e.payload for e in events]),
        first.prev_hash,
        hash_blob,
        [s.verb_id for s in statements],
        [n.form.filter_keys if n.form is not None else key_literal(filter_keys(n.statement))
         for n in plan.new],
        _or_none(registrations, count, None),
        _or_none(voided, count, False),
        _or_none(voids, count, None),
        _or_none(refs, count, None),
        plan.head.position,
        plan.head.hash,
        plan.head.stored,
    )


def _or_none(values: list, count: int, usual: object) -> list | None:
    """``values``, or None when every one is ``usual`` (INSERT_GROUP's unnest
    pads a NULL array with NULLs, which it reads as ``usual``)."""
    return None if values.count(usual) == count else values


def authority_keys(plan: GroupPlan) -> list[str | None]:
    """Each new statement's 'U:' key (statements.authority_key is its hash),
    or the one key once when every statement of the group has it (INSERT_GROUP
    then takes $21[1] for every row, as for the tenants)."""
    keys = []
    for new in plan.new:
        authority = authority_key_of(new.statement.body["authority"])
        keys.append(None if authority is None else AUTHORITY_KEY + authority)
    if keys and keys.count(keys[0]) == len(keys):
        return keys[:1]
    return keys


def key_literal(keys: list[str]) -> str:
    """The text[] literal of a new statement's rows in ``statement_keys``
    (INSERT_GROUP's $11): its filter keys but the authority's ('U:', which
    statements.authority_key holds and statement_keys does not).
    :func:`lrs.batching.filter_keys` puts that one last.  Left out here,
    PostgreSQL neither parses it nor tests every key's prefix for it: about
    0.7 microseconds of its CPU a statement (docs/scaling.md, branch b100-pg).

    Nor the related agent key ('a:') of that same IFI key: an Agent
    authority's (every Statement has one; the credential's, usually the
    same in every Statement of a client) is found by
    ``statements.authority_key`` and its index, which a related_agents walk
    reads beside the agent's key rows (:func:`lrs.store.statement_walks._walks`).
    One row and index entry of ``statement_keys`` fewer a Statement, a fifth
    of them for the ingest bench's (docs/scaling.md, branch b100-rows).  An
    anonymous Group authority's key ('group:...') names no agent: its
    members keep their 'a:' rows."""
    if keys and keys[-1].startswith(AUTHORITY_KEY):
        folded = RELATED_AGENT_KEY + keys[-1][len(AUTHORITY_KEY):]
        keys = keys[:-1]
        if folded in keys:
            keys.remove(folded)
    return array_literal(keys)


def array_literal(values: list[str]) -> str:
    """A text[] literal: every element double-quoted, backslash and quote escaped."""
    if not values:
        return "{}"
    text = '","'.join(values)
    # The separators hold 2 quotes each: any more, or a backslash, is in a
    # value.  (Testing for a quote at all took the escaping path for every
    # literal of two or more keys, about 0.6 µs a statement; branch b100y.)
    if text.count('"') != 2 * len(values) - 2 or "\\" in text:
        text = '","'.join(v.replace("\\", "\\\\").replace('"', '\\"') for v in values)
    return '{"' + text + '"}'
