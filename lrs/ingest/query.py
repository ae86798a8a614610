"""GET /statements parameters (xAPI-Communication 2.1.3) as typed values.

``parse_statement_query`` turns the query-string mapping into either a
:class:`StatementFetch` (``statementId`` / ``voidedStatementId``) or a
:class:`StatementQuery` (the filters), raising ``XapiError(400)`` naming the
parameter for anything the spec does not allow. A ``more`` link is a separate
request form: :func:`more_token` picks it out, :mod:`lrs.ingest.cursor`
encodes and decodes it.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from datetime import datetime

import msgspec

from lrs.xapi.common import is_iri
from lrs.xapi.errors import XapiError
from lrs.xapi.identity import ifi_key
from lrs.xapi.timestamps import timestamp_parameter

__all__ = [
    "FORMATS",
    "StatementFetch",
    "StatementQuery",
    "more_token",
    "parse_statement_query",
]

FORMATS = ("exact", "ids", "canonical")

_FILTER_PARAMS = frozenset(
    {
        "agent",
        "verb",
        "activity",
        "registration",
        "related_activities",
        "related_agents",
        "since",
        "until",
        "limit",
        "format",
        "attachments",
        "ascending",
    }
)
_SINGLE_PARAMS = frozenset({"statementId", "voidedStatementId"})
_SINGLE_EXTRAS = frozenset({"format", "attachments"})
_KNOWN = {name.lower(): name for name in _FILTER_PARAMS | _SINGLE_PARAMS | {"more"}}

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


class StatementQuery(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A filtered GET /statements; ``limit`` is already resolved (1..max)."""

    agent: str | None = None  # ifi_key of the agent parameter
    verb: str | None = None
    activity: str | None = None
    registration: uuid.UUID | None = None
    related_activities: bool = False
    related_agents: bool = False
    since: datetime | None = None  # exclusive, UTC
    until: datetime | None = None  # inclusive, UTC
    limit: int
    ascending: bool = False
    format: str = "exact"
    attachments: bool = False


class StatementFetch(msgspec.Struct, frozen=True, kw_only=True):
    """GET one Statement by ``statementId`` or (``voided=True``) ``voidedStatementId``."""

    statement_id: uuid.UUID
    voided: bool = False
    format: str = "exact"
    attachments: bool = False


def more_token(params: Mapping[str, str]) -> str | None:
    """The ``more`` cursor if this request follows a ``more`` link, else None.

    A ``more`` request carries nothing else: the cursor holds the query.
    """
    token = params.get("more")
    if token is None:
        return None
    others = sorted(name for name in params if name != "more")
    if others:
        raise XapiError(400, f"'more' cannot be combined with other parameters: {', '.join(others)}", others[0])
    return token


def parse_statement_query(
    params: Mapping[str, str], *, default_limit: int, max_limit: int
) -> StatementQuery | StatementFetch:
    """Validate GET /statements parameters (all but ``more``).

    ``default_limit`` applies when ``limit`` is absent; ``limit=0`` means the
    server maximum and larger values are clamped to ``max_limit``.
    """
    for name in params:
        if name not in _FILTER_PARAMS and name not in _SINGLE_PARAMS:
            raise XapiError(400, _unknown_message(name), name)

    fmt = params.get("format", "exact")
    if fmt not in FORMATS:
        raise XapiError(400, "format must be one of exact, ids, canonical", "format")
    attachments = _boolean(params, "attachments")

    if "statementId" in params or "voidedStatementId" in params:
        if "statementId" in params and "voidedStatementId" in params:
            raise XapiError(400, "statementId and voidedStatementId cannot be used together", "voidedStatementId")
        name = "statementId" if "statementId" in params else "voidedStatementId"
        extra = sorted(p for p in params if p != name and p not in _SINGLE_EXTRAS)
        if extra:
            raise XapiError(
                400,
                f"{name} can only be combined with attachments and format, not {', '.join(extra)}",
                extra[0],
            )
        return StatementFetch(
            statement_id=_uuid(params[name], name),
            voided=name == "voidedStatementId",
            format=fmt,
            attachments=attachments,
        )

    agent = None
    if "agent" in params:
        agent = _agent_key(params["agent"])
    registration = _uuid(params["registration"], "registration") if "registration" in params else None
    return StatementQuery(
        agent=agent,
        verb=_iri(params, "verb"),
        activity=_iri(params, "activity"),
        registration=registration,
        related_activities=_boolean(params, "related_activities"),
        related_agents=_boolean(params, "related_agents"),
        since=_timestamp(params, "since"),
        until=_timestamp(params, "until"),
        limit=_limit(params.get("limit"), default_limit, max_limit),
        ascending=_boolean(params, "ascending"),
        format=fmt,
        attachments=attachments,
    )


def _unknown_message(name: str) -> str:
    if name == "more":
        return "'more' cannot be combined with other parameters"
    known = _KNOWN.get(name.lower())
    if known is not None:
        return f"unknown parameter {name!r}; parameter names are case-sensitive (did you mean {known!r}?)"
    return f"unknown parameter {name!r}"


def _agent_key(text: str) -> str:
    from lrs.xapi.actors import parse_agent_param  # validation lives with the actor model

    actor = parse_agent_param(text, path="agent")
    key = ifi_key(actor)
    if key is None:
        raise XapiError(400, "agent must be an Agent or an Identified Group, not an Anonymous Group", "agent")
    return key


def _boolean(params: Mapping[str, str], name: str) -> bool:
    value = params.get(name)
    if value is None or value == "false":
        return False
    if value == "true":
        return True
    raise XapiError(400, f"{name} must be true or false, got {value!r}", name)


def _uuid(text: str, name: str) -> uuid.UUID:
    if not _UUID.match(text):
        raise XapiError(400, f"{name} must be a UUID in standard string form, got {text!r}", name)
    return uuid.UUID(text)


def _iri(params: Mapping[str, str], name: str) -> str | None:
    value = params.get(name)
    if value is None:
        return None
    if not is_iri(value):
        raise XapiError(400, f"{name} must be an absolute IRI, got {value!r}", name)
    return value


def _timestamp(params: Mapping[str, str], name: str) -> datetime | None:
    """A ``since``/``until`` parameter as a UTC instant (lrs.xapi.timestamps:
    what a Statement's timestamp may be), or None when not given."""
    text = params.get(name)
    return None if text is None else timestamp_parameter(text, name)


def _limit(text: str | None, default_limit: int, max_limit: int) -> int:
    if text is None:
        limit = default_limit
    elif text.isascii() and text.isdigit():
        limit = int(text)
    else:
        raise XapiError(400, f"limit must be a non-negative integer, got {text!r}", "limit")
    if limit == 0 or limit > max_limit:
        return max_limit
    return limit

