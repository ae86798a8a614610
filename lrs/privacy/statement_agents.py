"""Where a Statement names its Agents and Groups (pure): each identity's
canonical identifier, the identities a Statement names, the walk that seals
each Agent/Group of a Statement (:func:`seal_statement`) and the copies and
walks the openers use (:mod:`lrs.privacy.seal` describes the sealed forms)."""

from __future__ import annotations

from typing import Any, Callable, Iterator, Mapping

from lrs.xapi.identity import ifi_key

__all__ = [
    "agent_slots",
    "copy_path",
    "identifier",
    "identities",
    "seal_statement",
    "stored_agents",
    "with_identities_of",
]


_AGENT_TYPES = ("Agent", "Group")


def identifier(agent: Mapping[str, Any]) -> str | None:
    """The canonical identifier of an Agent or Group; None for an Anonymous
    Group without identified members (which the validator does not let in)."""
    key = ifi_key(agent)  # type: ignore[arg-type]
    if key is not None:
        return key
    members = [ifi_key(m) for m in agent.get("member", ())]
    if not members or None in members:
        return None
    return "group:" + "&".join(sorted(members))  # type: ignore[arg-type]


def agent_slots(statement: dict[str, Any]) -> Iterator[tuple[dict[str, Any], str]]:
    """(container, property) of every Agent/Group in a Statement (not members)."""
    yield statement, "actor"
    obj = statement.get("object")
    if isinstance(obj, dict):
        if obj.get("objectType") in _AGENT_TYPES:
            yield statement, "object"
        elif obj.get("objectType") == "SubStatement":
            yield obj, "actor"
            sub = obj.get("object")
            if isinstance(sub, dict) and sub.get("objectType") in _AGENT_TYPES:
                yield obj, "object"
            yield from _context_slots(obj.get("context"))
    if "authority" in statement:
        yield statement, "authority"
    yield from _context_slots(statement.get("context"))


def _context_slots(context: Any) -> Iterator[tuple[dict[str, Any], str]]:
    if not isinstance(context, dict):
        return
    for name in ("instructor", "team"):
        if name in context:
            yield context, name
    for entry in context.get("contextAgents", ()):
        yield entry, "agent"
    for entry in context.get("contextGroups", ()):
        yield entry, "group"


def identities(statement: dict[str, Any]) -> set[str]:
    """The identifiers of every identity a Statement names (members included)."""
    found: set[str] = set()
    for container, name in agent_slots(statement):
        agent = container.get(name)
        if not isinstance(agent, dict):
            continue
        ident = identifier(agent)
        if ident is not None and (ifi_key(agent) is not None or "name" in agent):  # type: ignore[arg-type]
            found.add(ident)
        for member in agent.get("member", ()):
            member_ident = identifier(member)
            if member_ident is not None:
                found.add(member_ident)
    return found


def copy_path(statement: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``statement`` whose agent-holding containers are copies too
    (the input is never modified)."""
    copy = dict(statement)
    obj = copy.get("object")
    if isinstance(obj, dict) and obj.get("objectType") == "SubStatement":
        obj = copy["object"] = dict(obj)
        if isinstance(obj.get("context"), dict):
            obj["context"] = _copy_context(obj["context"])
    if isinstance(copy.get("context"), dict):
        copy["context"] = _copy_context(copy["context"])
    return copy


_CONTEXT_AGENTS = ("instructor", "team", "contextAgents", "contextGroups")
_CONTEXT_AGENTS_SET = frozenset(_CONTEXT_AGENTS)


def _copy_context(context: dict[str, Any]) -> dict[str, Any]:
    if not any(name in context for name in _CONTEXT_AGENTS):
        return context  # nothing in it is replaced
    context = dict(context)
    for name in ("contextAgents", "contextGroups"):
        if name in context:
            context[name] = [dict(entry) for entry in context[name]]
    return context


def seal_statement(statement: dict[str, Any], seal_agent: Callable[[dict[str, Any]], dict[str, Any]]) -> dict[str, Any]:
    """``statement`` with every Agent/Group replaced by ``seal_agent(agent)``
    (the input is never modified).  The places and their order are
    :func:`agent_slots`'s, walked without it: this runs for every Statement
    written, and the generic walk and copy cost more than sealing a known
    learner's Agent."""
    sealed = dict(statement)
    actor = sealed.get("actor")
    if isinstance(actor, dict):
        sealed["actor"] = seal_agent(actor)
    obj = sealed.get("object")
    if isinstance(obj, dict):
        object_type = obj.get("objectType")
        if object_type == "Agent" or object_type == "Group":
            sealed["object"] = seal_agent(obj)
        elif object_type == "SubStatement":
            obj = sealed["object"] = dict(obj)
            actor = obj.get("actor")
            if isinstance(actor, dict):
                obj["actor"] = seal_agent(actor)
            sub = obj.get("object")
            if isinstance(sub, dict) and sub.get("objectType") in _AGENT_TYPES:
                obj["object"] = seal_agent(sub)
            context = obj.get("context")
            if isinstance(context, dict) and not _CONTEXT_AGENTS_SET.isdisjoint(context):
                obj["context"] = _seal_context(context, seal_agent)
    authority = sealed.get("authority")
    if isinstance(authority, dict):
        sealed["authority"] = seal_agent(authority)
    context = sealed.get("context")
    if isinstance(context, dict) and not _CONTEXT_AGENTS_SET.isdisjoint(context):
        sealed["context"] = _seal_context(context, seal_agent)
    return sealed


def _seal_context(context: dict[str, Any], seal_agent: Callable[[dict[str, Any]], dict[str, Any]]) -> dict[str, Any]:
    context = dict(context)
    for name in ("instructor", "team"):
        agent = context.get(name)
        if isinstance(agent, dict):
            context[name] = seal_agent(agent)
    for name, slot in (("contextAgents", "agent"), ("contextGroups", "group")):
        entries = context.get(name)
        if entries is not None:
            context[name] = [_seal_entry(entry, slot, seal_agent) for entry in entries]
    return context


def _seal_entry(entry: dict[str, Any], slot: str, seal_agent: Callable[[dict[str, Any]], dict[str, Any]]) -> dict[str, Any]:
    entry = dict(entry)
    agent = entry.get(slot)
    if isinstance(agent, dict):
        entry[slot] = seal_agent(agent)
    return entry


def stored_agents(statement: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Each Agent or Group of a stored Statement that :func:`open_statement` opens."""
    for container, name in agent_slots(statement):
        agent = container.get(name)
        if isinstance(agent, dict):
            yield agent


def with_identities_of(statement: dict[str, Any], stored: dict[str, Any]) -> dict[str, Any] | None:
    """``statement`` (as sent, sealed or not) with each Agent/Group as
    ``stored`` (a stored Statement with the same id, found equivalent once
    opened) holds it: sent again, it then compares equal to what is stored
    whatever form that was written in (v1, v2, v3 or clear).  The authority
    is left as it is.  None when the two do not name agents in the same places."""
    copy = copy_path(statement)
    mine = [(c, n) for c, n in agent_slots(copy) if not (c is copy and n == "authority")]
    theirs = [(c, n) for c, n in agent_slots(stored) if not (c is stored and n == "authority")]
    if [n for _, n in mine] != [n for _, n in theirs]:
        return None
    for (container, name), (source, source_name) in zip(mine, theirs):
        if (name in container) != (source_name in source):
            return None
        if source_name in source:
            container[name] = source[source_name]
    return copy
