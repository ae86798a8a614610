"""Whether a stored Statement meets a query's filters, decided on its JSON.

The read model finds candidates by 64-bit hashes of their filter keys
(``statement_keys``, ``statements.verb_key`` and ``authority_key``,
schemas/postgres/0092_lean_statements.sql).  Two keys of one tenant may share
a hash, so every candidate a reader returns is checked here against the keys
its own JSON gives (:func:`lrs.ingest.prepare.prepared_from_stored`, the
rules the writer used): a candidate that only shares a hash is dropped, and
the reader reads on.  Pure functions; the JSON is the stored form (sealed
identities are their pseudonym keys, as the filters hold them).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

from lrs.batching import filter_keys
from lrs.ingest.prepare import prepared_from_stored
from lrs.ingest.query import StatementQuery
from lrs.xapi.identity import authority_key, ifi_key

__all__ = [
    "PAIR_KEY", "REGISTRATION_KEY", "VERB_KEY", "has_authority", "meets_filters", "pair_key", "pair_keys",
    "reached_keys", "statement_keys", "statement_ref_target",
]

# The verb's key ('V:' || verb IRI is statements.verb_key's text) and the
# registration's, as a referring Statement holds them in statement_keys for
# the Statements its StatementRef chain reaches (:func:`reached_keys`).
VERB_KEY, REGISTRATION_KEY = "V:", "R:"
# An Activity Object and the verb together (schemas/postgres/0141): the
# activity + verb filter walks this key's rows alone.  The writer derives it
# in SQL from the 'O:' key and the verb (lrs/store/group_commit_sql.py
# INSERT_GROUP), as 'P:' || activity IRI || chr(31) || verb IRI.
PAIR_KEY = "P:"


def pair_key(activity: str, verb: str) -> str:
    """The key of a Statement whose Object is the Activity ``activity`` and whose verb is ``verb``."""
    return f"{PAIR_KEY}{activity}\x1f{verb}"

_AGENT_TYPES = ("Agent", "Group")
_NOT_ACTIVITIES = ("Agent", "Group", "StatementRef", "SubStatement")
_NOT_SUB_ACTIVITIES = ("Agent", "Group", "StatementRef")


def statement_keys(body: dict[str, Any]) -> frozenset[str]:
    """The read model's filter keys of a stored Statement ('A:', 'a:', 'O:', 'o:', 'U:')."""
    return frozenset(filter_keys(prepared_from_stored(body)))


def pair_keys(body: dict[str, Any]) -> frozenset[str]:
    """The pair keys (:func:`pair_key`) of the stored Statement ``body``
    itself: its Object's, when that is an Activity, with its verb."""
    return frozenset(pair_key(activity, body["verb"]["id"]) for activity in _direct_activities(body))


def reached_keys(body: dict[str, Any]) -> frozenset[str]:
    """The keys a Statement whose StatementRef chain reaches the stored
    Statement ``body`` holds for it in statement_keys (lrs/store/ref_keys.py):
    its filter keys, its verb ('V:') and its registration ('R:', the UUID's
    lowercase text, as PostgreSQL writes a uuid), its pair key ('P:', the
    activity + verb filter's).  Its authority's ('U:') too, which a
    related_agents page walks in statement_keys for a chain's authority (an
    Agent authority's 'a:' key has no row of its own,
    lrs.store.group_columns.key_literal; add_statement_ref_keys() copies it
    from the target's authority_key, schemas/postgres/0142).  The
    statements/read/mine scope never reads these rows: it is the referring
    Statement's own authority (statements.authority_key)."""
    prepared = prepared_from_stored(body)
    keys = set(filter_keys(prepared))
    keys.add(VERB_KEY + prepared.verb_id)
    keys.update(pair_key(activity, prepared.verb_id) for activity in prepared.activity_ids)
    if prepared.registration is not None:
        keys.add(REGISTRATION_KEY + str(prepared.registration))
    return frozenset(keys)


def has_authority(body: dict[str, Any], authority: str) -> bool:
    """Whether the Statement's authority has the key ``authority`` (statements/read/mine):
    the 'U:' key of :func:`lrs.batching.filter_keys`."""
    return authority_key(body["authority"]) == authority


def meets_filters(query: StatementQuery, body: dict[str, Any]) -> bool:
    """Whether the Statement itself meets the agent, verb, activity and
    registration filters of ``query`` (not the time bounds, nor voiding):
    whether :func:`statement_keys` holds the filter's key, asked of the JSON
    directly (a page checks each of its Statements, so this stays cheap)."""
    if query.verb is not None and body["verb"]["id"] != query.verb:
        return False
    if query.registration is not None:
        registration = (body.get("context") or {}).get("registration")
        if registration is None or uuid.UUID(registration) != query.registration:
            return False
    if query.agent is not None:
        agents = _related_agent_keys(body) if query.related_agents else _direct_agent_keys(body)
        if query.agent not in agents:
            return False
    if query.activity is not None:
        activities = _related_activities(body) if query.related_activities else _direct_activities(body)
        if query.activity not in activities:
            return False
    return True


# The rules of lrs.ingest.prepare._prepared and lrs.batching.filter_keys, as
# generators that stop at the first key that matches ('A:' keys are
# _direct_agent_keys, 'A:' and 'a:' together _related_agent_keys, and so for
# activities); tests/unit/test_stored_keys.py holds them equal to statement_keys.
def _agent_keys(agent: dict[str, Any]) -> Iterator[str]:
    key = ifi_key(agent)
    if key is not None:
        yield key
    for member in agent.get("member") or ():
        member_key = ifi_key(member)
        if member_key is not None:
            yield member_key


def _direct_agent_keys(body: dict[str, Any]) -> Iterator[str]:
    yield from _agent_keys(body["actor"])
    target = body["object"]
    if target.get("objectType") in _AGENT_TYPES:
        yield from _agent_keys(target)


def _context_agent_keys(context: dict[str, Any] | None) -> Iterator[str]:
    if context is None:
        return
    for name in ("instructor", "team"):
        agent = context.get(name)
        if agent is not None:
            yield from _agent_keys(agent)
    for entry in context.get("contextAgents", ()):
        yield from _agent_keys(entry["agent"])
    for entry in context.get("contextGroups", ()):
        yield from _agent_keys(entry["group"])


def _related_agent_keys(body: dict[str, Any]) -> Iterator[str]:
    yield from _direct_agent_keys(body)
    yield from _agent_keys(body["authority"])
    yield from _context_agent_keys(body.get("context"))
    target = body["object"]
    if target.get("objectType") == "SubStatement":
        yield from _agent_keys(target["actor"])
        inner = target["object"]
        if inner.get("objectType") in _AGENT_TYPES:
            yield from _agent_keys(inner)
        yield from _context_agent_keys(target.get("context"))


def _direct_activities(body: dict[str, Any]) -> Iterator[str]:
    target = body["object"]
    if target.get("objectType") not in _NOT_ACTIVITIES:
        yield target["id"]


def _context_activities(context: dict[str, Any] | None) -> Iterator[str]:
    if context is None:
        return
    for value in (context.get("contextActivities") or {}).values():
        for activity in value:
            yield activity["id"]


def _related_activities(body: dict[str, Any]) -> Iterator[str]:
    yield from _direct_activities(body)
    yield from _context_activities(body.get("context"))
    target = body["object"]
    if target.get("objectType") == "SubStatement":
        inner = target["object"]
        if inner.get("objectType") not in _NOT_SUB_ACTIVITIES:
            yield inner["id"]
        yield from _context_activities(target.get("context"))


def statement_ref_target(body: dict[str, Any]) -> uuid.UUID | None:
    """The id a StatementRef object points at, else None."""
    target = body["object"]
    if target.get("objectType") != "StatementRef":
        return None
    return uuid.UUID(target["id"])


