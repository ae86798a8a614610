"""Activity Definitions carried by statements, and the LRS's canonical one.

The Activities resource returns the canonical Activity Object (Communication
2.5).  The canonical definition is merged, in log order, from the
definitions in statements whose sender holds the ``define`` scope (4.2:
without it the LRS "SHOULD NOT update its canonical representation"):

- ``name`` and ``description`` (language maps) and ``extensions`` merge by
  key, so a statement in one language does not erase another language;
- every other property (type, moreInfo, interactionType, correctResponsesPattern,
  choices, scale, source, target, steps) is replaced by the newer value.

An Activity the LRS knows nothing about still gets an Activity Object with
just its id (2.5.s2.b1).
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, NamedTuple

import msgspec

__all__ = [
    "CONTEXT_ACTIVITY_KINDS",
    "DefinitionUpdate",
    "activity_definitions_in",
    "drop_repeated_definitions",
    "fold_definitions",
    "activity_object",
    "authority_credential_key",
    "merge_definition",
]

_encode = msgspec.json.Encoder().encode

CONTEXT_ACTIVITY_KINDS = ("parent", "grouping", "category", "other")
MERGED_BY_KEY = frozenset({"name", "description", "extensions"})


def activity_definitions_in(statement: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """``(activity id, definition)`` for every Activity with a definition in
    the statement, in document order: the object, context activities, and
    the same inside a SubStatement."""
    found: list[tuple[str, dict[str, Any]]] = []
    _from_object(statement.get("object"), found)
    _from_context(statement.get("context"), found)
    return found


def _from_object(obj: Any, found: list[tuple[str, dict[str, Any]]]) -> None:
    if not isinstance(obj, dict):
        return
    kind = obj.get("objectType", "Activity")
    if kind == "Activity":
        definition = obj.get("definition")
        if isinstance(obj.get("id"), str) and isinstance(definition, dict) and definition:
            found.append((obj["id"], definition))
    elif kind == "SubStatement":
        _from_object(obj.get("object"), found)
        _from_context(obj.get("context"), found)


def _from_context(context: Any, found: list[tuple[str, dict[str, Any]]]) -> None:
    if not isinstance(context, dict):
        return
    activities = context.get("contextActivities")
    if not isinstance(activities, dict):
        return
    for kind in CONTEXT_ACTIVITY_KINDS:
        value = activities.get(kind)
        if value is None:
            continue
        items = value if isinstance(value, list) else [value]
        for item in items:
            if isinstance(item, dict) and item.get("objectType", "Activity") == "Activity":
                _from_object(item, found)


def merge_definition(
    current: dict[str, Any] | None, incoming: dict[str, Any]
) -> dict[str, Any]:
    """The canonical definition after ``incoming`` from an authorised sender."""
    merged = dict(current or {})
    for name, value in incoming.items():
        old = merged.get(name)
        if name in MERGED_BY_KEY and isinstance(old, dict) and isinstance(value, dict):
            merged[name] = {**old, **value}
        else:
            merged[name] = value
    return merged


def activity_object(activity_id: str, definition: dict[str, Any] | None) -> dict[str, Any]:
    activity: dict[str, Any] = {"objectType": "Activity", "id": activity_id}
    if definition:
        activity["definition"] = definition
    return activity


def authority_credential_key(statement: dict[str, Any], authority_home: str) -> str | None:
    """The key of the credential that sent the statement, read from the
    ``authority`` the LRS set (an Agent with account ``{homePage, key}``)."""
    authority = statement.get("authority")
    if not isinstance(authority, dict):
        return None
    account = authority.get("account")
    if not isinstance(account, dict) or account.get("homePage") != authority_home:
        return None
    name = account.get("name")
    return name if isinstance(name, str) else None


class DefinitionUpdate(NamedTuple):
    """One Activity Definition in an accepted statement of a defining sender."""

    tenant: str
    activity_id: str
    definition: dict[str, Any]
    position: int


def drop_repeated_definitions(updates: list[DefinitionUpdate]) -> list[DefinitionUpdate]:
    """``updates`` without those that repeat the previous update of the same
    Activity: merging a definition a second time right after itself changes
    nothing (:func:`merge_definition` of its result with the same definition
    is that result), so :func:`fold_definitions` gives the same answer,
    positions included, for less work.  Many statements of a group usually
    carry the same definition of the same Activity."""
    last: dict[tuple[str, str], bytes] = {}
    kept: list[DefinitionUpdate] = []
    for update in updates:
        slot = (update.tenant, update.activity_id)
        # Compared as JSON text: as Python values 1 == 1.0 == true.
        text = _encode(update.definition)
        if last.get(slot) == text:
            continue
        last[slot] = text
        kept.append(update)
    return kept


def fold_definitions(
    current: Mapping[tuple[str, str], dict[str, Any]], updates: Iterable[DefinitionUpdate]
) -> dict[tuple[str, str], tuple[dict[str, Any], int]]:
    """The canonical definitions after ``updates`` (in log order) are merged into
    ``current`` (``(tenant, activity id)`` -> stored definition; absent: none yet).
    Returns only those that differ from ``current``, each with the position of
    the last update that changed it (repeating a known definition, the common
    case, writes nothing)."""
    changed: dict[tuple[str, str], tuple[dict[str, Any], int]] = {}
    for update in updates:
        slot = (update.tenant, update.activity_id)
        base = changed[slot][0] if slot in changed else current.get(slot)
        merged = merge_definition(base, update.definition)
        if merged != base:
            changed[slot] = (merged, update.position)
    return {slot: value for slot, value in changed.items() if value[0] != current.get(slot)}
