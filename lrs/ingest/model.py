"""What the ingest rules hand to the store for each accepted Statement."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec

__all__ = ["PreparedStatement"]


class PreparedStatement(msgspec.Struct, frozen=True):
    """A validated Statement with the LRS-set properties filled in.

    ``body`` is the final Statement JSON except ``stored`` (and except
    ``timestamp`` when ``has_timestamp`` is False: the store sets both from
    the commit time). ``id``, ``authority`` and ``version`` are set, and
    every ``contextActivities`` value is an array.

    The tuples are the read-model index columns for the GET /statements
    filters; see :func:`lrs.ingest.prepare.prepare_statements` for exactly
    what each one holds.
    """

    statement_id: uuid.UUID
    body: dict[str, Any]
    has_timestamp: bool
    voids: uuid.UUID | None  # target id if this is a voiding statement
    verb_id: str
    actor_keys: tuple[str, ...]
    related_agent_keys: tuple[str, ...]
    activity_ids: tuple[str, ...]
    related_activity_ids: tuple[str, ...]
    registration: uuid.UUID | None
    # Target of a StatementRef object (also set for voiding statements), for
    # the spec's "Filter Conditions for StatementRefs".
    statement_ref: uuid.UUID | None = None
