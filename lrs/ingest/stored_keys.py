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
from typing import Any

from lrs.batching import (
    ACTIVITY_KEY,
    AGENT_KEY,
    AUTHORITY_KEY,
    RELATED_ACTIVITY_KEY,
    RELATED_AGENT_KEY,
    filter_keys,
)
from lrs.ingest.prepare import prepared_from_stored
from lrs.ingest.query import StatementQuery

__all__ = ["has_authority", "meets_filters", "statement_keys", "statement_ref_target"]


def statement_keys(body: dict[str, Any]) -> frozenset[str]:
    """The read model's filter keys of a stored Statement ('A:', 'a:', 'O:', 'o:', 'U:')."""
    return frozenset(filter_keys(prepared_from_stored(body)))


def has_authority(body: dict[str, Any], authority: str, keys: frozenset[str] | None = None) -> bool:
    """Whether the Statement's authority has the IFI key ``authority`` (statements/read/mine)."""
    return AUTHORITY_KEY + authority in (statement_keys(body) if keys is None else keys)


def meets_filters(query: StatementQuery, body: dict[str, Any], keys: frozenset[str] | None = None) -> bool:
    """Whether the Statement itself meets the agent, verb, activity and
    registration filters of ``query`` (not the time bounds, nor voiding)."""
    if query.verb is not None and body["verb"]["id"] != query.verb:
        return False
    if query.registration is not None:
        registration = (body.get("context") or {}).get("registration")
        if registration is None or uuid.UUID(registration) != query.registration:
            return False
    if query.agent is None and query.activity is None:
        return True
    if keys is None:
        keys = statement_keys(body)
    if query.agent is not None and not _has(keys, AGENT_KEY, RELATED_AGENT_KEY, query.agent, query.related_agents):
        return False
    if query.activity is not None and not _has(
        keys, ACTIVITY_KEY, RELATED_ACTIVITY_KEY, query.activity, query.related_activities
    ):
        return False
    return True


def statement_ref_target(body: dict[str, Any]) -> uuid.UUID | None:
    """The id a StatementRef object points at, else None."""
    target = body["object"]
    if target.get("objectType") != "StatementRef":
        return None
    return uuid.UUID(target["id"])


def _has(keys: frozenset[str], direct: str, related: str, value: str, include_related: bool) -> bool:
    return direct + value in keys or (include_related and related + value in keys)
