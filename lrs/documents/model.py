"""Document resources and the keys that name one document or a set of them.

A document lives under ``(tenant, resource, activity_id, agent_key,
registration, document_id)``; parts a resource does not use are ``""``:

- State: activity id, agent key, registration (``""`` when none), stateId.
- Activity Profile: activity id and profileId.
- Agent Profile: agent key and profileId.

``agent_key`` is :func:`lrs.xapi.identity.ifi_key` of the agent, so two
representations of the same Agent (say, with and without ``name``) reach
the same document.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any


class Resource(str, enum.Enum):
    STATE = "state"
    ACTIVITY_PROFILE = "activity_profile"
    AGENT_PROFILE = "agent_profile"

    @property
    def id_param(self) -> str:
        """The query parameter naming one document of this resource."""
        return "stateId" if self is Resource.STATE else "profileId"

    @property
    def scope(self) -> str:
        """The xAPI scope that grants reading and writing this resource."""
        return "state" if self is Resource.STATE else "profile"


@dataclass(frozen=True, slots=True)
class DocumentSet:
    """The documents of one context: everything but the document id.

    For the State resource ``registration`` None means "any registration"
    when listing or deleting, and "no registration" in a :class:`DocumentKey`.
    """

    resource: Resource
    activity_id: str = ""
    agent_key: str = ""
    agent: dict[str, Any] | None = None  # the Agent as sent (for the event log)
    registration: str | None = None


@dataclass(frozen=True, slots=True)
class DocumentKey:
    """One document: its context and its id."""

    context: DocumentSet
    document_id: str

    @property
    def resource(self) -> Resource:
        return self.context.resource

    @property
    def registration_key(self) -> str:
        return self.context.registration or ""


@dataclass(frozen=True, slots=True)
class StoredDocument:
    """The current version of a document."""

    content: bytes
    content_type: str
    etag: str
    updated: datetime


@dataclass(frozen=True, slots=True)
class NewVersion:
    """The content a write leaves in place of (or instead of no) document."""

    content: bytes
    content_type: str
    etag: str
