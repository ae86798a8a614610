"""Turn validated Statements into what the store appends (pure, hot path).

For each Statement of a request, in order:

- ``id``: kept (in standard lowercase form) or assigned with ``new_id()``
  (xAPI-Data 2.4.1: the LRS MUST generate one when missing). Two Statements
  of one batch with the same id reject the batch with 400 (Communication
  2.1.2 s2 b6).
- ``authority``: always the one of the request's credentials; a client's
  authority is overwritten (2.4.9 s3 b4).
- ``version``: kept when given (the validator only lets ``1.0.x`` through on
  1.0.3 requests; ``1.0`` is stored as ``1.0.0``, Communication 3.3.s3.b3), else ``"1.0.0"`` for 1.0.x requests (2.4.10 s3 b3: "If they
  lack a version, the version MUST be set to 1.0.0") and ``"2.0.0"`` for 2.0
  requests.
- ``stored``: removed; the store sets it at commit, and ``timestamp`` too when
  the client gave none (``has_timestamp`` False).
- ``timestamp`` (and a SubStatement's): normalised to UTC
  (``2024-01-31T14:00:00.25+02:00`` becomes ``2024-01-31T12:00:00.25Z``, the
  fraction digits kept as sent; a timestamp without a zone is read as UTC).
  2.0 asks the LRS to store UTC; 1.0.3 says it SHOULD* return UTC (Data 4.5).
- A request with more than ``max_statements`` Statements is rejected with
  413 (Communication 3.2: a request larger than the LRS allows).
- ``contextActivities``: every value becomes an array (2.4.6.2 s4 b3: the LRS
  MUST return arrays), in the Statement and in a SubStatement.

The index columns follow the GET /statements filters (Communication 2.1.3):

- ``actor_keys`` (``agent``): IFI keys of the actor and of an Agent/Group
  object, plus the keys of the *members* of those Groups. The spec: "Groups
  that have members which match the specified Agent based on their Inverse
  Functional Identifier ... are considered a match". It does not limit this
  to Identified Groups, so members of Anonymous Groups count too, and only
  members listed in the Statement can match.
- ``related_agent_keys`` (``related_agents=true``): the above plus authority,
  context instructor and team, the SubStatement's actor, object, instructor
  and team, and (2.0) every ``contextAgents[].agent`` and
  ``contextGroups[].group`` in the Statement or SubStatement, each with its
  Group members.
- ``activity_ids`` (``activity``): the object's id when the object is an
  Activity.
- ``related_activity_ids`` (``related_activities=true``): the above plus all
  contextActivities (parent, grouping, category, other) and the
  SubStatement's Activity object and contextActivities.
- ``registration``: ``context.registration``.

Filters through StatementRefs ("Filter Conditions for StatementRefs") are a
query-time rule: ``statement_ref`` names the target for the store to follow.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from lrs.ingest.model import PreparedStatement
from lrs.xapi.errors import XapiError
from lrs.xapi.identity import ifi_key
from lrs.xapi.statement import full_statement_version

__all__ = ["prepare_statements", "prepared_from_stored", "utc_timestamp", "VOIDED_VERB"]

VOIDED_VERB = "http://adlnet.gov/expapi/verbs/voided"

_AGENT_TYPES = ("Agent", "Group")


def prepare_statements(
    statements: list[dict[str, Any]],
    *,
    version: str,
    authority: dict[str, Any],
    new_id: Callable[[], uuid.UUID],
    max_statements: int | None = None,
    parse_id: Callable[[str], uuid.UUID] = uuid.UUID,
) -> list[PreparedStatement]:
    """Prepare one request's Statements; raise ``XapiError(400)`` on duplicate
    ids and ``XapiError(413)`` for more than ``max_statements`` Statements.

    ``version`` is the negotiated request version ("1.0.3" or "2.0.0").
    ``parse_id`` turns the (validated) UUID texts into ``uuid.UUID`` values;
    any equivalent, faster constructor may stand in for the default.
    ``authority`` is shared by reference by every body; callers must not
    mutate it afterwards. The input dicts are not modified.
    """
    if max_statements is not None and len(statements) > max_statements:
        raise XapiError(
            413,
            f"{len(statements)} statements in one request; this LRS accepts at most {max_statements} per request",
            "$",
        )
    version_2 = version.startswith("2.")
    default_version = "2.0.0" if version_2 else "1.0.0"
    authority_keys = _actor_keys(authority)
    seen: dict[uuid.UUID, int] = {}
    prepared: list[PreparedStatement] = []
    for index, statement in enumerate(statements):
        body = dict(statement)
        given_id = body.get("id")
        if given_id is None:
            statement_id = new_id()
            body["id"] = str(statement_id)
        else:
            statement_id = parse_id(given_id)
            canonical_id = str(statement_id)
            if canonical_id != given_id:
                body["id"] = canonical_id
        first = seen.setdefault(statement_id, index)
        if first != index:
            raise XapiError(
                400,
                f"duplicate statement id {statement_id} in one batch (also at $[{first}].id)",
                f"$[{index}].id",
            )
        body["authority"] = authority
        given_version = body.get("version")
        if given_version is None:
            body["version"] = default_version
        elif given_version.count(".") == 1:
            body["version"] = full_statement_version(given_version)
        body.pop("stored", None)
        if "timestamp" in body:
            body["timestamp"] = utc_timestamp(body["timestamp"])
        context = body.get("context")
        if context is not None:
            context = body["context"] = _context_with_arrays(context)
        statement_object = body["object"]
        if statement_object.get("objectType") == "SubStatement":
            sub_context = statement_object.get("context")
            if sub_context is not None:
                fixed = _context_with_arrays(sub_context)
                if fixed is not sub_context:
                    statement_object = body["object"] = {**statement_object, "context": fixed}
            sub_timestamp = statement_object.get("timestamp")
            if sub_timestamp is not None:
                normalised = utc_timestamp(sub_timestamp)
                if normalised != sub_timestamp:
                    statement_object = body["object"] = {**statement_object, "timestamp": normalised}
        prepared.append(_prepared(statement_id, body, context, statement_object, authority_keys, parse_id))
    return prepared


def _prepared(
    statement_id: uuid.UUID,
    body: dict[str, Any],
    context: dict[str, Any] | None,
    statement_object: dict[str, Any],
    authority_keys: list[str],
    parse_id: Callable[[str], uuid.UUID],
) -> PreparedStatement:
    verb_id = body["verb"]["id"]
    object_type = statement_object.get("objectType")

    actor_keys = _actor_keys(body["actor"])
    activity_ids: list[str] = []
    statement_ref = None
    voids = None
    if object_type in _AGENT_TYPES:
        actor_keys += _actor_keys(statement_object)
    elif object_type == "StatementRef":
        statement_ref = parse_id(statement_object["id"])
        if verb_id == VOIDED_VERB:
            voids = statement_ref
    elif object_type != "SubStatement":
        activity_ids.append(statement_object["id"])

    related_agents = actor_keys + authority_keys
    related_activities = list(activity_ids)
    registration = None
    if context is not None:
        _add_context(context, related_agents, related_activities)
        registration_text = context.get("registration")
        if registration_text is not None:
            registration = parse_id(registration_text)
    if object_type == "SubStatement":
        related_agents += _actor_keys(statement_object["actor"])
        sub_object = statement_object["object"]
        sub_type = sub_object.get("objectType")
        if sub_type in _AGENT_TYPES:
            related_agents += _actor_keys(sub_object)
        elif sub_type != "StatementRef":
            related_activities.append(sub_object["id"])
        sub_context = statement_object.get("context")
        if sub_context is not None:
            _add_context(sub_context, related_agents, related_activities)

    return PreparedStatement(
        statement_id=statement_id,
        body=body,
        has_timestamp="timestamp" in body,
        voids=voids,
        verb_id=verb_id,
        actor_keys=_unique(actor_keys),
        related_agent_keys=_unique(related_agents),
        activity_ids=tuple(activity_ids),
        related_activity_ids=_unique(related_activities),
        registration=registration,
        statement_ref=statement_ref,
    )


def prepared_from_stored(body: dict[str, Any]) -> PreparedStatement:
    """A stored Statement (its JSON as the log holds it, decoded) as
    :func:`prepare_statements` prepared it: the same index columns and filter
    keys, since the stored JSON is the prepared body with ``stored`` added."""
    return _prepared(
        uuid.UUID(body["id"]), body, body.get("context"), body["object"], _actor_keys(body["authority"]), uuid.UUID
    )


def _actor_keys(actor: dict[str, Any]) -> list[str]:
    """The actor's own IFI key (if any) and those of its listed members."""
    keys = []
    key = ifi_key(actor)
    if key is not None:
        keys.append(key)
    members = actor.get("member")
    if members:
        for member in members:
            member_key = ifi_key(member)
            if member_key is not None:
                keys.append(member_key)
    return keys


def _add_context(context: dict[str, Any], agents: list[str], activities: list[str]) -> None:
    instructor = context.get("instructor")
    if instructor is not None:
        agents += _actor_keys(instructor)
    team = context.get("team")
    if team is not None:
        agents += _actor_keys(team)
    for entry in context.get("contextAgents", ()):
        agents += _actor_keys(entry["agent"])
    for entry in context.get("contextGroups", ()):
        agents += _actor_keys(entry["group"])
    context_activities = context.get("contextActivities")
    if context_activities:
        for value in context_activities.values():
            for activity in value:
                activities.append(activity["id"])


def _context_with_arrays(context: dict[str, Any]) -> dict[str, Any]:
    """``context`` itself, or a copy whose contextActivities values are all arrays."""
    context_activities = context.get("contextActivities")
    if not context_activities:
        return context
    for value in context_activities.values():
        if not isinstance(value, list):
            break
    else:
        return context
    fixed = {k: v if isinstance(v, list) else [v] for k, v in context_activities.items()}
    return {**context, "contextActivities": fixed}


# A validated ISO 8601 timestamp (lrs.xapi.common): extended or basic format,
# minutes and seconds optional, fraction with "." or ",", optional zone.
# Already in the form utc_timestamp produces (no leap second to roll over).
_ALREADY_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:[0-5]\d(?:\.\d+)?Z")
_TIMESTAMP_PARTS = re.compile(
    r"(\d{4})-?(\d{2})-?(\d{2})[Tt](\d{2})(?::?(\d{2})(?::?(\d{2})([.,]\d+)?)?)?"
    r"([Zz]|[+-]\d{2}(?::?\d{2})?)?"
)


def utc_timestamp(text: str) -> str:
    """``text`` as ``YYYY-MM-DDTHH:MM:SS[.fraction]Z``, the same point in time.

    The fraction's digits are kept as sent (no rounding); no zone means UTC.
    A value this cannot read, or whose UTC date falls outside years
    1-9999, is returned unchanged.
    """
    if _ALREADY_UTC.fullmatch(text):
        return text  # the common case: nothing to convert
    match = _TIMESTAMP_PARTS.fullmatch(text)
    if match is None:
        return text
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    offset = timedelta(0)
    if zone is not None and zone not in ("Z", "z"):
        digits = zone[1:].replace(":", "")
        offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:] or 0))
        if zone[0] == "-":
            offset = -offset
    try:
        # Seconds are added, not set, so a leap second (:60) rolls over.
        moment = datetime(int(year), int(month), int(day), int(hour), int(minute or 0), tzinfo=timezone.utc)
        moment += timedelta(seconds=int(second or 0)) - offset
    except (ValueError, OverflowError):
        return text
    fraction_text = "." + fraction[1:] if fraction else ""
    return (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T"
        f"{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}{fraction_text}Z"
    )


def _unique(values: list[str]) -> tuple[str, ...]:
    if len(values) < 2:
        return tuple(values)
    if len(values) == 2:
        first, second = values
        return (first,) if first == second else (first, second)
    return tuple(dict.fromkeys(values))
