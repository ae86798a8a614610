"""Query parameters of the document resources and of /activities and /agents.

The LRS rejects parameters it does not recognise in their context with 400
(Communication 3.2.s3.b7), repeated parameters too, and validates values as
it validates the same types in statements (Data 2.2.s4.b4).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable

from lrs.documents.model import DocumentKey, DocumentSet, Resource
from lrs.xapi.actors import parse_agent_param
from lrs.xapi.common import is_iri, is_uuid
from lrs.xapi.errors import XapiError
from lrs.xapi.timestamps import timestamp_parameter
from lrs.xapi.identity import ifi_key

__all__ = [
    "DocumentRequest",
    "parse_activity_id",
    "parse_agent",
    "parse_document_params",
    "parse_since",
    "query_dict",
]

READS = frozenset({"GET", "HEAD"})
WRITES = frozenset({"PUT", "POST"})

# Parameters naming the context of each resource.
_CONTEXT_PARAMS: dict[Resource, tuple[str, ...]] = {
    Resource.STATE: ("activityId", "agent", "registration"),
    Resource.ACTIVITY_PROFILE: ("activityId",),
    Resource.AGENT_PROFILE: ("agent",),
}
_REQUIRED: dict[Resource, tuple[str, ...]] = {
    Resource.STATE: ("activityId", "agent"),
    Resource.ACTIVITY_PROFILE: ("activityId",),
    Resource.AGENT_PROFILE: ("agent",),
}


@dataclass(frozen=True, slots=True)
class DocumentRequest:
    """A validated document request: one document (``key``) or a set."""

    context: DocumentSet
    document_id: str | None = None
    since: datetime | None = None

    @property
    def key(self) -> DocumentKey:
        if self.document_id is None:
            raise ValueError("this request names no single document")
        return DocumentKey(self.context, self.document_id)


def query_dict(items: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Query parameters as a dict; a parameter given twice is a 400."""
    params: dict[str, str] = {}
    for name, value in items:
        if name in params:
            raise XapiError(400, f"parameter {name!r} is given more than once", name)
        params[name] = value
    return params


def parse_document_params(
    resource: Resource, method: str, items: Iterable[tuple[str, str]]
) -> DocumentRequest:
    """Validate the query of ``method`` on ``resource``.

    - PUT and POST name one document (the id parameter is required).
    - GET/HEAD without the id list ids, optionally ``since``.
    - DELETE without the id deletes every State document of the context;
      the profile resources have no multiple-document DELETE.
    """
    params = query_dict(items)
    id_param = resource.id_param
    allowed = set(_CONTEXT_PARAMS[resource]) | {id_param}
    if method in READS and id_param not in params:
        allowed.add("since")
    unknown = sorted(set(params) - allowed)
    if unknown:
        name = unknown[0]
        hint = ""
        if name == "since":
            hint = " (since only applies when listing ids, without " + id_param + ")"
        else:
            for known in allowed:
                if known.lower() == name.lower():
                    hint = f"; parameter names are case-sensitive (did you mean {known!r}?)"
        raise XapiError(400, f"unknown parameter {name!r} for {method} on this resource{hint}", name)
    for name in _REQUIRED[resource]:
        if name not in params:
            raise XapiError(400, f"the {name} parameter is required", name)
    document_id = params.get(id_param)
    if document_id is None and (method in WRITES or (method == "DELETE" and resource is not Resource.STATE)):
        raise XapiError(400, f"the {id_param} parameter is required for {method}", id_param)
    if document_id is not None and document_id == "":
        raise XapiError(400, f"{id_param} must not be empty", id_param)

    activity_id = parse_activity_id(params["activityId"]) if "activityId" in params else ""
    agent: dict[str, Any] | None = None
    agent_key = ""
    if "agent" in params:
        agent, agent_key = parse_agent(params["agent"])
    registration = None
    if "registration" in params:
        registration = parse_registration(params["registration"])
    since = parse_since(params["since"]) if "since" in params else None
    context = DocumentSet(resource, activity_id, agent_key, agent, registration)
    return DocumentRequest(context, document_id, since)


def parse_activity_id(text: str, name: str = "activityId") -> str:
    if not is_iri(text):
        raise XapiError(400, f"{name} must be an absolute IRI, got {text!r}", name)
    return text


def parse_agent(text: str, name: str = "agent") -> tuple[dict[str, Any], str]:
    """An Agent (not a Group) given as JSON, and its identity key."""
    agent = parse_agent_param(text, path=name)
    if agent.get("objectType") == "Group":
        raise XapiError(
            400,
            f"{name} must be an Agent, not a Group (use the Group's identifier in an Agent object)",
            name,
        )
    key = ifi_key(agent)
    if key is None:  # parse_agent_param already requires one IFI on an Agent
        raise XapiError(400, f"{name} must have an identifier (mbox, mbox_sha1sum, openid or account)", name)
    return agent, key


def parse_registration(text: str, name: str = "registration") -> str:
    if not is_uuid(text):
        raise XapiError(400, f"{name} must be a UUID, got {text!r}", name)
    return str(uuid.UUID(text))


def parse_since(text: str, name: str = "since") -> datetime:
    """An xAPI timestamp (lrs.xapi.timestamps) as a UTC instant; one without
    a zone is read as UTC."""
    return timestamp_parameter(text, name)
