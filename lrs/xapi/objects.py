"""Statement objects (Data 2.4.4): Activities, their definitions, StatementRefs.

The polymorphic ``object`` of a Statement or SubStatement is assembled in
``lrs.xapi.statement`` because a SubStatement needs Result and Context.
"""

from __future__ import annotations

import operator
from typing import Literal

from msgspec import UNSET, UnsetType

from lrs.xapi.common import (
    IRI_EXPECTED,
    CheckedIri,
    CheckedLanguageMap,
    Extensions,
    Iri,
    LanguageMap,
    Strict,
    Uuid,
    is_iri,
    language_map_problem,
)
from lrs.xapi.errors import field_error

__all__ = [
    "InteractionComponent",
    "ActivityDefinition",
    "Activity",
    "StatementRef",
    "INTERACTION_TYPES",
    "COMPONENT_LISTS",
]

InteractionType = Literal[
    "true-false",
    "choice",
    "fill-in",
    "long-fill-in",
    "matching",
    "performance",
    "sequencing",
    "likert",
    "numeric",
    "other",
]
INTERACTION_TYPES = InteractionType.__args__  # type: ignore[attr-defined]

# Which interaction component lists each interactionType supports (Data 2.4.4.1.s15).
COMPONENT_LISTS: dict[str, frozenset[str]] = {
    "choice": frozenset({"choices"}),
    "sequencing": frozenset({"choices"}),
    "likert": frozenset({"scale"}),
    "matching": frozenset({"source", "target"}),
    "performance": frozenset({"steps"}),
}
_LIST_NAMES = ("choices", "scale", "source", "target", "steps")
_get_lists = operator.attrgetter(*_LIST_NAMES)


class InteractionComponent(Strict, kw_only=True):
    id: str
    description: LanguageMap | UnsetType = UNSET


class ActivityDefinition(Strict, kw_only=True):
    name: CheckedLanguageMap | UnsetType = UNSET
    description: CheckedLanguageMap | UnsetType = UNSET
    type: CheckedIri | UnsetType = UNSET
    moreInfo: Iri | UnsetType = UNSET
    interactionType: InteractionType | UnsetType = UNSET
    correctResponsesPattern: list[str] | UnsetType = UNSET
    choices: list[InteractionComponent] | UnsetType = UNSET
    scale: list[InteractionComponent] | UnsetType = UNSET
    source: list[InteractionComponent] | UnsetType = UNSET
    target: list[InteractionComponent] | UnsetType = UNSET
    steps: list[InteractionComponent] | UnsetType = UNSET
    extensions: Extensions | UnsetType = UNSET

    def __post_init__(self) -> None:
        for name, names in ((".name", self.name), (".description", self.description)):
            if names is not UNSET:
                problem = language_map_problem(names)
                if problem:
                    raise field_error(name, problem)
        if self.type is not UNSET and not is_iri(self.type):
            raise field_error(".type", IRI_EXPECTED)
        kind = self.interactionType
        lists = _get_lists(self)
        if kind is UNSET and self.correctResponsesPattern is UNSET and lists.count(UNSET) == len(lists):
            return  # not an interaction: the common case
        if kind is UNSET:
            if self.correctResponsesPattern is not UNSET:
                raise field_error(
                    ".correctResponsesPattern",
                    "`correctResponsesPattern` is only allowed with an `interactionType`",
                )
            for name in _LIST_NAMES:
                if getattr(self, name) is not UNSET:
                    raise field_error(f".{name}", f"`{name}` is only allowed with an `interactionType`")
            return
        allowed = COMPONENT_LISTS.get(kind, frozenset())
        for name in _LIST_NAMES:
            components = getattr(self, name)
            if components is UNSET:
                continue
            if name not in allowed:
                raise field_error(f".{name}", f"`{name}` is not allowed for interactionType {kind!r}")
            seen: set[str] = set()
            for i, component in enumerate(components):
                if component.id in seen:
                    raise field_error(
                        f".{name}[{i}].id", f"Interaction component id {component.id!r} is not unique"
                    )
                seen.add(component.id)


class Activity(Strict, kw_only=True):
    objectType: Literal["Activity"] | UnsetType = UNSET
    id: CheckedIri
    definition: ActivityDefinition | UnsetType = UNSET

    def __post_init__(self) -> None:
        if not is_iri(self.id):
            raise field_error(".id", IRI_EXPECTED)


class StatementRef(Strict, kw_only=True):
    objectType: Literal["StatementRef"]
    id: Uuid
