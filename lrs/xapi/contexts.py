"""Context (Data 2.4.6), including the 2.0 contextAgents and contextGroups."""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import UNSET, Meta, UnsetType

from lrs.xapi.actors import Actor, Agent, Group
from lrs.xapi.common import (
    EXTENSIONS_MET,
    KNOWN_LANGUAGE_TAGS,
    LANGUAGE_TAG_EXPECTED,
    UUID_EXPECTED,
    CheckedLanguageTag,
    CheckedUuid,
    Extensions,
    Iri,
    Strict,
    is_language_tag,
    match_uuid,
)
from lrs.xapi.errors import field_error
from lrs.xapi.objects import Activity, StatementRef

__all__ = ["ContextActivities", "ContextAgent", "ContextGroup", "Context", "V2_ONLY_FIELDS"]

# Context properties that exist only from xAPI 2.0.0 on.
V2_ONLY_FIELDS = ("contextAgents", "contextGroups")

# The spec lets each value be one Activity or an array of them (Data 2.4.6.2.s4.b2).
ContextActivityList = list[Activity] | Activity
RelevantTypes = Annotated[list[Iri], Meta(min_length=1)]


class ContextActivities(Strict, kw_only=True):
    parent: ContextActivityList | UnsetType = UNSET
    grouping: ContextActivityList | UnsetType = UNSET
    category: ContextActivityList | UnsetType = UNSET
    other: ContextActivityList | UnsetType = UNSET


class ContextAgent(Strict, kw_only=True):
    """xAPI 2.0: an Agent relevant to the Statement, with the kinds of relevance."""

    objectType: Literal["contextAgent"]
    agent: Agent
    relevantTypes: RelevantTypes | UnsetType = UNSET


class ContextGroup(Strict, kw_only=True):
    """xAPI 2.0: a Group relevant to the Statement, with the kinds of relevance."""

    objectType: Literal["contextGroup"]
    group: Group
    relevantTypes: RelevantTypes | UnsetType = UNSET


class Context(Strict, kw_only=True):
    registration: CheckedUuid | UnsetType = UNSET
    instructor: Actor | UnsetType = UNSET
    team: Group | UnsetType = UNSET
    contextActivities: ContextActivities | UnsetType = UNSET
    revision: str | UnsetType = UNSET
    platform: str | UnsetType = UNSET
    language: CheckedLanguageTag | UnsetType = UNSET
    statement: StatementRef | UnsetType = UNSET
    extensions: Extensions | UnsetType = UNSET
    # Only in xAPI 2.0.0; statement.py rejects them for 1.0.3 requests.
    contextAgents: list[ContextAgent] | UnsetType = UNSET
    contextGroups: list[ContextGroup] | UnsetType = UNSET

    def __post_init__(self) -> None:
        registration = self.registration
        if registration is not UNSET and match_uuid(registration) is None:
            raise field_error(".registration", UUID_EXPECTED)
        language = self.language
        if language is not UNSET and language not in KNOWN_LANGUAGE_TAGS and not is_language_tag(language):
            raise field_error(".language", LANGUAGE_TAG_EXPECTED)
        if self.extensions is not UNSET:
            next(EXTENSIONS_MET)
