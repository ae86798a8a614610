"""Statement comparison (xAPI-Data 2.3.1, "Statement Comparison Requirements").

Used for the 409-or-no-op decision when a Statement id already exists and for
signed-statement checks. The spec's rule: differences that could have been
caused by the exceptions to Statement immutability MUST be ignored; other
differences, including different serialisations, MUST NOT be.

What is ignored, and why (each item is an immutability exception or an
LRS-side change the spec allows or requires):

- ``id``, ``authority``, ``stored``, ``timestamp``, ``version`` of the
  Statement: assigned during LRS processing (2.3.1 b1).
- Verb ``display`` (2.3.1 b3) and Activity ``definition`` anywhere
  (2.3.1 b2): not part of the Statement itself.
- Order of Group ``member`` lists, at any depth (2.3.1 b5): unordered; the
  LRS may return members in any order. Members are compared as a multiset.
- A ``contextActivities`` value given as one Activity object versus an array
  holding that one Activity (2.4.6.2 s4: the LRS MUST return arrays).
- Case where the spec says a value is case-insensitive (2.3.1 b7): the domain
  of an ``mbox``, hex digits (``mbox_sha1sum``, attachment ``sha2``), UUIDs
  (StatementRef ids, ``registration``), language tags (``context.language``
  and attachment language-map keys).
- A SubStatement ``timestamp`` is compared as a point in time to the
  millisecond (2.3.1 b4 and 4.5: other time zone or truncation to ms is the
  same Statement).
- ``result.duration`` is compared as a string (2.3.1 b8) after dropping
  precision beyond 0.01 s (4.6 s1 b5).

Everything else is compared exactly, including the presence of optional
properties such as ``objectType``. JSON numbers compare by value (``1`` and
``1.0`` are the same number), booleans never equal numbers.
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import datetime, timedelta, timezone
from typing import Any

__all__ = ["statements_equivalent"]

_LRS_ASSIGNED = frozenset({"id", "authority", "stored", "timestamp", "version"})

# Tags that keep values of different JSON kinds apart after freezing.
_BOOL = object()
_ARRAY = object()
_MEMBERS = object()
_INSTANT = object()

_SECONDS_FRACTION = re.compile(r"(\.\d{2})\d+S$")


def statements_equivalent(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """True when ``a`` and ``b`` are the same Statement by the spec's comparison."""
    return _statement(a, top=True) == _statement(b, top=True)


# -- freezing: each helper returns a hashable, order-aware value -------------


def _json(value: Any) -> Any:
    """Any JSON value, frozen: objects ignore key order, arrays keep order."""
    if isinstance(value, dict):
        return frozenset((k, _json(v)) for k, v in value.items())
    if isinstance(value, list):
        return (_ARRAY, tuple(_json(v) for v in value))
    if isinstance(value, bool):
        return (_BOOL, value)
    return value


def _statement(stmt: dict[str, Any], *, top: bool) -> frozenset:
    pairs = []
    for key, value in stmt.items():
        if top and key in _LRS_ASSIGNED:
            continue
        if key == "actor":
            pairs.append((key, _actor(value)))
        elif key == "verb":
            pairs.append((key, frozenset((k, _json(v)) for k, v in value.items() if k != "display")))
        elif key == "object":
            pairs.append((key, _object(value)))
        elif key == "result":
            pairs.append((key, _result(value)))
        elif key == "context":
            pairs.append((key, _context(value)))
        elif key == "timestamp":
            pairs.append((key, _instant(value)))
        elif key == "attachments":
            pairs.append((key, (_ARRAY, tuple(_attachment(att) for att in value))))
        else:
            pairs.append((key, _json(value)))
    return frozenset(pairs)


def _actor(actor: dict[str, Any]) -> frozenset:
    pairs = []
    for key, value in actor.items():
        if key == "member":
            members = Counter(_actor(m) for m in value)
            pairs.append((key, (_MEMBERS, frozenset(members.items()))))
        elif key == "mbox":
            pairs.append((key, _mbox(value)))
        elif key == "mbox_sha1sum":
            pairs.append((key, value.lower()))
        else:
            pairs.append((key, _json(value)))
    return frozenset(pairs)


def _mbox(mbox: str) -> str:
    local, at, domain = mbox.rpartition("@")
    return local + at + domain.lower() if at else mbox


def _object(obj: dict[str, Any]) -> frozenset:
    object_type = obj.get("objectType")
    if object_type in ("Agent", "Group"):
        return _actor(obj)
    if object_type == "SubStatement":
        return _statement(obj, top=False)
    if object_type == "StatementRef":
        return _statement_ref(obj)
    return _activity(obj)


def _activity(activity: dict[str, Any]) -> frozenset:
    return frozenset((k, _json(v)) for k, v in activity.items() if k != "definition")


def _statement_ref(ref: dict[str, Any]) -> frozenset:
    return frozenset((k, v.lower() if k == "id" else _json(v)) for k, v in ref.items())


def _result(result: dict[str, Any]) -> frozenset:
    pairs = []
    for key, value in result.items():
        if key == "duration":
            pairs.append((key, _SECONDS_FRACTION.sub(r"\1S", value)))
        else:
            pairs.append((key, _json(value)))
    return frozenset(pairs)


def _context(context: dict[str, Any]) -> frozenset:
    pairs = []
    for key, value in context.items():
        if key == "contextActivities":
            pairs.append((key, _context_activities(value)))
        elif key in ("instructor", "team"):
            pairs.append((key, _actor(value)))
        elif key in ("registration", "language"):
            pairs.append((key, value.lower()))
        elif key == "statement":
            pairs.append((key, _statement_ref(value)))
        elif key == "contextAgents":
            pairs.append((key, _context_actors(value, "agent")))
        elif key == "contextGroups":
            pairs.append((key, _context_actors(value, "group")))
        else:
            pairs.append((key, _json(value)))
    return frozenset(pairs)


def _context_activities(context_activities: dict[str, Any]) -> frozenset:
    pairs = []
    for key, value in context_activities.items():
        activities = value if isinstance(value, list) else [value]
        pairs.append((key, (_ARRAY, tuple(_activity(a) for a in activities))))
    return frozenset(pairs)


def _context_actors(entries: list[dict[str, Any]], actor_key: str) -> tuple:
    frozen = []
    for entry in entries:
        frozen.append(
            frozenset((k, _actor(v) if k == actor_key else _json(v)) for k, v in entry.items())
        )
    return (_ARRAY, tuple(frozen))


def _attachment(attachment: dict[str, Any]) -> frozenset:
    pairs = []
    for key, value in attachment.items():
        if key in ("display", "description"):
            pairs.append((key, frozenset((tag.lower(), text) for tag, text in value.items())))
        elif key == "sha2":
            pairs.append((key, value.lower()))
        else:
            pairs.append((key, _json(value)))
    return frozenset(pairs)


def _instant(timestamp: str) -> Any:
    """A timestamp as a UTC point in time truncated to milliseconds."""
    try:
        moment = datetime.fromisoformat(timestamp)
    except ValueError:
        return timestamp
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
        zone = "utc"
    else:
        zone = "local"
    moment -= timedelta(microseconds=moment.microsecond % 1000)
    return (_INSTANT, zone, moment)
