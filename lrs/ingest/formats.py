"""The ``format`` parameter of GET /statements (xAPI-Communication 2.1.3).

- ``exact``: the Statement as stored, unchanged.
- ``ids``: Agents and Identified Groups reduced to ``objectType`` and their
  Inverse Functional Identifier; Anonymous Groups to ``objectType`` and their
  members (each reduced); Activities to ``id`` alone (the minimum that
  identifies them, wherever they occur); Verbs to ``id`` (xAPI-Data 2.4.3 s6 b2: no ``display``).
- ``canonical``: every language map of a Verb ``display``, an Activity
  definition ``name``/``description``, interaction component descriptions and
  Attachment ``display``/``description`` reduced to the one entry that best
  fits the Accept-Language preferences (2.1.3 s4), Agents and Groups as in
  ``exact``. This LRS keeps no separate canonical definitions, so the
  Statement's own maps are the canonical ones.

Both rewrites apply at every place these objects occur: actor, object,
authority, context instructor/team/contextActivities (and 2.0
contextAgents/contextGroups), and the same inside a SubStatement. The input
is never modified; unchanged parts are shared with the result.
"""

from __future__ import annotations

from typing import Any

__all__ = ["format_statement", "parse_accept_language", "pick_language"]

_AGENT_TYPES = ("Agent", "Group")
_IFI_PROPERTIES = ("mbox", "mbox_sha1sum", "openid", "account")
_COMPONENT_LISTS = ("choices", "scale", "source", "target", "steps")


def format_statement(stmt: dict[str, Any], fmt: str, languages: list[str]) -> dict[str, Any]:
    """``stmt`` in format ``fmt`` ("exact", "ids" or "canonical").

    ``languages`` are language ranges in order of preference, as returned by
    :func:`parse_accept_language`; only ``canonical`` uses them.
    """
    if fmt == "exact":
        return stmt
    if fmt == "ids":
        return _rewrite(stmt, _ids_actor, _ids_activity, _ids_verb, None)
    if fmt == "canonical":

        def pick(language_map: dict[str, str]) -> dict[str, str]:
            return pick_language(language_map, languages)

        return _rewrite(
            stmt,
            None,
            lambda activity: _canonical_activity(activity, pick),
            lambda verb: _with_map(verb, "display", pick),
            lambda attachment: _with_map(_with_map(attachment, "display", pick), "description", pick),
        )
    raise ValueError(f"unknown statement format {fmt!r}")


def parse_accept_language(header: str | None) -> list[str]:
    """Language ranges from an Accept-Language header, most preferred first.

    Entries with ``q=0`` are dropped; equal weights keep header order.
    """
    if not header:
        return []
    weighted = []
    for position, item in enumerate(header.split(",")):
        parts = item.strip().split(";")
        tag = parts[0].strip()
        if not tag:
            continue
        quality = 1.0
        for param in parts[1:]:
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if quality > 0:
            weighted.append((-quality, position, tag))
    weighted.sort()
    return [tag for _, _, tag in weighted]


def pick_language(language_map: dict[str, str], languages: list[str]) -> dict[str, str]:
    """The one-entry map that best matches ``languages`` (RFC 2616 14.4).

    A range matches a tag equal to it or starting with it followed by "-"
    (case-insensitive); ``*`` matches anything. When no range matches, a
    tag sharing a range's primary language is taken, and failing that the
    map's first entry.
    """
    if len(language_map) <= 1:
        return language_map
    tags = [(tag, tag.lower()) for tag in language_map]
    for wanted in languages:
        wanted = wanted.lower()
        if wanted == "*":  # anything goes: a later, more specific range may still pick
            continue
        for tag, lowered in tags:
            if lowered == wanted or lowered.startswith(wanted + "-"):
                return {tag: language_map[tag]}
    for wanted in languages:
        primary = wanted.lower().split("-", 1)[0]
        if primary == "*":
            continue
        for tag, lowered in tags:
            if lowered.split("-", 1)[0] == primary:
                return {tag: language_map[tag]}
    first = tags[0][0]
    return {first: language_map[first]}


# -- the walk over a Statement ------------------------------------------------


def _rewrite(stmt, actor_fn, activity_fn, verb_fn, attachment_fn):
    """A copy of ``stmt`` with each Agent/Group, Activity, Verb, Attachment rewritten.

    A ``None`` function leaves that kind of object as it is.
    """
    out = dict(stmt)
    if actor_fn is not None:
        out["actor"] = actor_fn(stmt["actor"])
        if "authority" in stmt:
            out["authority"] = actor_fn(stmt["authority"])
    if verb_fn is not None:
        out["verb"] = verb_fn(stmt["verb"])
    obj = stmt["object"]
    object_type = obj.get("objectType")
    if object_type in _AGENT_TYPES:
        if actor_fn is not None:
            out["object"] = actor_fn(obj)
    elif object_type == "SubStatement":
        out["object"] = _rewrite(obj, actor_fn, activity_fn, verb_fn, attachment_fn)
    elif object_type != "StatementRef":
        out["object"] = activity_fn(obj)
    context = stmt.get("context")
    if context is not None:
        out["context"] = _rewrite_context(context, actor_fn, activity_fn)
    attachments = stmt.get("attachments")
    if attachments is not None and attachment_fn is not None:
        out["attachments"] = [attachment_fn(a) for a in attachments]
    return out


def _rewrite_context(context, actor_fn, activity_fn):
    out = dict(context)
    if actor_fn is not None:
        for key in ("instructor", "team"):
            if key in context:
                out[key] = actor_fn(context[key])
        if "contextAgents" in context:
            out["contextAgents"] = [{**e, "agent": actor_fn(e["agent"])} for e in context["contextAgents"]]
        if "contextGroups" in context:
            out["contextGroups"] = [{**e, "group": actor_fn(e["group"])} for e in context["contextGroups"]]
    context_activities = context.get("contextActivities")
    if context_activities is not None:
        out["contextActivities"] = {
            key: [activity_fn(a) for a in (value if isinstance(value, list) else [value])]
            for key, value in context_activities.items()
        }
    return out


# -- ids ------------------------------------------------------------------------


def _ids_actor(actor: dict[str, Any]) -> dict[str, Any]:
    object_type = actor.get("objectType", "Agent")
    for prop in _IFI_PROPERTIES:
        if prop in actor:
            return {"objectType": object_type, prop: actor[prop]}
    return {"objectType": object_type, "member": [_ids_actor(m) for m in actor.get("member", ())]}


def _ids_activity(activity: dict[str, Any]) -> dict[str, Any]:
    return {"id": activity["id"]}


def _ids_verb(verb: dict[str, Any]) -> dict[str, Any]:
    return {"id": verb["id"]}


# -- canonical ------------------------------------------------------------------


def _with_map(obj: dict[str, Any], key: str, pick) -> dict[str, Any]:
    language_map = obj.get(key)
    if language_map is None or len(language_map) <= 1:
        return obj
    return {**obj, key: pick(language_map)}


def _canonical_activity(activity: dict[str, Any], pick) -> dict[str, Any]:
    definition = activity.get("definition")
    if definition is None:
        return activity
    new_definition = _with_map(_with_map(definition, "name", pick), "description", pick)
    for list_name in _COMPONENT_LISTS:
        components = definition.get(list_name)
        if components is not None:
            if new_definition is definition:
                new_definition = dict(definition)
            new_definition[list_name] = [_with_map(c, "description", pick) for c in components]
    if new_definition is definition:
        return activity
    return {**activity, "definition": new_definition}
