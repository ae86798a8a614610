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

__all__ = ["agent_names_in", "person_from_identifiers", "person_object"]


def person_from_identifiers(agents: Iterable[dict[str, Any]], names: Iterable[str] = ()) -> dict[str, Any]:
    """The Person of ``agents`` known to be one person (the requested Agent
    first, then the identifiers linked to it): every inverse functional
    identifier and name once, in the order given, each property an array
    (Communication 2.4.s6); the Agents' own names come before ``names``."""
    agents = list(agents)
    person: dict[str, Any] = {"objectType": "Person"}
    all_names: list[str] = []
    own = [a["name"] for a in agents if isinstance(a.get("name"), str)]
    for name in own + list(names):
        if name not in all_names:
            all_names.append(name)
    if all_names:
        person["name"] = all_names
    for ifi in IFI_NAMES:
        values: list[Any] = []
        for agent in agents:
            if ifi in agent:
                value = agent[ifi]
                value = dict(value) if isinstance(value, dict) else value
                if value not in values:
                    values.append(value)
        if values:
            person[ifi] = values
    return person


def person_object(agent: dict[str, Any], names: Iterable[str] = ()) -> dict[str, Any]:
    """The Person of one Agent the LRS knows no other identifier of (2.4.s3.b3)."""
    return person_from_identifiers([agent], names)


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
