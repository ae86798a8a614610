"""Statement objects (Data 2.4.4): Activities, their definitions, StatementRefs.

The polymorphic ``object`` of a Statement or SubStatement is assembled in
``lrs.xapi.statement`` because a SubStatement needs Result and Context.
"""

from __future__ import annotations

import operator
from typing import Literal

from msgspec import UNSET, UnsetType

from lrs.xapi.common import (
    EXTENSIONS_MET,
    IRI_EXPECTED,
    KNOWN_IRIS,
    KNOWN_LANGUAGE_TAGS,
    CheckedIri,
    CheckedLanguageMap,
    Extensions,
    Iri,
    LanguageMap,
    Strict,
    Uuid,
    check_language_map,
    is_iri,
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
_NO_LISTS = (UNSET,) * len(_LIST_NAMES)


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
        # Language maps, types and interaction lists repeat statement after
        # statement: a set look-up (lrs.xapi.common.KNOWN_*) settles the
        # common case, and the full test names the problem otherwise.
        names = self.name
        if names is not UNSET and not KNOWN_LANGUAGE_TAGS.issuperset(names):
            check_language_map(names, ".name")
        names = self.description
        if names is not UNSET and not KNOWN_LANGUAGE_TAGS.issuperset(names):
            check_language_map(names, ".description")
        kind_of = self.type
        if kind_of is not UNSET and kind_of not in KNOWN_IRIS and not is_iri(kind_of):
            raise field_error(".type", IRI_EXPECTED)
        if self.extensions is not UNSET:
            next(EXTENSIONS_MET)
        kind = self.interactionType
        if kind is UNSET and self.correctResponsesPattern is UNSET and _get_lists(self) == _NO_LISTS:
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
        if self.id not in KNOWN_IRIS and not is_iri(self.id):
            raise field_error(".id", IRI_EXPECTED)


class StatementRef(Strict, kw_only=True):
    objectType: Literal["StatementRef"]
    id: Uuid
