"""The Person object of the Agents resource (Communication 2.4).

The LRS has no directory service, so a Person holds the requested Agent's
identifier, the other identifiers linked to the same person (the roster's
identity links, lrs/identities.py), and the names with which the requested
identifier appears in the tenant's statements (the requested name first).  With nothing known, it is
just the requested Agent as a Person (2.4.s3.b3).  Every property is an
array, each occurs once (2.4.s6).
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator

from lrs.xapi.actors import IFI_NAMES
from lrs.xapi.identity import ifi_key

__all__ = ["agent_names_in", "person_object"]


def person_object(
    agent: dict[str, Any], names: Iterable[str] = (), linked: Iterable[dict[str, Any]] = ()
) -> dict[str, Any]:
    """``linked``: Agents of the other identifiers linked to the same person
    (lrs.identities); their identifiers join the arrays after the requested one."""
    person: dict[str, Any] = {"objectType": "Person"}
    all_names: list[str] = []
    for name in ([agent["name"]] if isinstance(agent.get("name"), str) else []) + list(names):
        if name not in all_names:
            all_names.append(name)
    if all_names:
        person["name"] = all_names
    for source in (agent, *linked):
        for ifi in IFI_NAMES:
            if ifi in source:
                value = source[ifi]
                value = dict(value) if isinstance(value, dict) else value
                values = person.setdefault(ifi, [])
                if value not in values:
                    values.append(value)
    return person


def agent_names_in(statement: dict[str, Any], key: str) -> list[str]:
    """Names given to the Agent with identity ``key`` anywhere in the statement
    (actor, object, group members, instructor, team, context agents and
    groups, inside a SubStatement too), in document order."""
    names: list[str] = []
    for actor in _actors(statement):
        name = actor.get("name")
        if isinstance(name, str) and name not in names and ifi_key(actor) == key:
            names.append(name)
    return names


def _actors(statement: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield from _with_members(statement.get("actor"))
    obj = statement.get("object")
    if isinstance(obj, dict):
        kind = obj.get("objectType")
        if kind in ("Agent", "Group"):
            yield from _with_members(obj)
        elif kind == "SubStatement":
            yield from _actors(obj)
    context = statement.get("context")
    if isinstance(context, dict):
        yield from _with_members(context.get("instructor"))
        yield from _with_members(context.get("team"))
        for entry in context.get("contextAgents") or ():
            if isinstance(entry, dict):
                yield from _with_members(entry.get("agent"))
        for entry in context.get("contextGroups") or ():
            if isinstance(entry, dict):
                yield from _with_members(entry.get("group"))


def _with_members(actor: Any) -> Iterator[dict[str, Any]]:
    if not isinstance(actor, dict):
        return
    yield actor
    for member in actor.get("member") or ():
        if isinstance(member, dict):
            yield member
