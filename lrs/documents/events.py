"""The event a document write appends to the log, and the fold that replays it.

Every change of a document is one event of type ``document`` whose payload
is canonical JSON (sorted keys) holding everything needed to rebuild the
document without the LRS's rules::

    {"resource": "state", "op": "put", "activityId": "...",
     "agent": {...}, "agentKey": "mbox:mailto:...", "registration": "...",
     "stateId": "...", "contentType": "application/json",
     "content": "<base64>", "etag": "\\"<sha1>\\""}

With personal data sealed (docs/privacy.md) ``content`` is ``sealedContent``
and there is no ``etag`` (the content's SHA-1, computed again on replay).
``op`` is ``put`` or ``post`` (the content is then the document as stored
after the write, merged for a POST) or ``delete``.  Deleting all State
documents of a context appends one ``delete`` event per document.  The
event's ``stored`` time is the document's ``updated`` time.
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any, Callable, Iterable

import msgspec

from lrs.documents.concurrency import etag_of
from lrs.documents.model import DocumentKey, NewVersion, Resource

__all__ = ["DOCUMENT_EVENT", "DocumentRow", "document_event_payload", "replay_documents", "row_key"]

DOCUMENT_EVENT = "document"
_encode = msgspec.json.Encoder(order="sorted").encode
_decode = msgspec.json.Decoder().decode

# (tenant, resource, activity_id, agent_key, registration, document_id)
RowKey = tuple[str, str, str, str, str, str]


def row_key(tenant: str, key: DocumentKey) -> RowKey:
    ctx = key.context
    return (tenant, ctx.resource.value, ctx.activity_id, ctx.agent_key, key.registration_key, key.document_id)


def document_event_payload(
    key: DocumentKey, op: str, version: NewVersion | None, seal_content: Callable[[bytes], str] | None = None
) -> bytes:
    """``seal_content``: the agent's documents are stored sealed (docs/privacy.md);
    the content then travels as ``sealedContent``, never in clear."""
    ctx = key.context
    body: dict[str, Any] = {"resource": ctx.resource.value, "op": op, ctx.resource.id_param: key.document_id}
    if ctx.activity_id:
        body["activityId"] = ctx.activity_id
    if ctx.agent_key:
        body["agentKey"] = ctx.agent_key
        if ctx.agent is not None:
            body["agent"] = ctx.agent
    if ctx.registration:
        body["registration"] = ctx.registration
    if version is not None:
        body["contentType"] = version.content_type
        if seal_content is not None:
            # No ETag beside sealed content: it is the content's SHA-1, which
            # would outlive an erasure in clear; a replay computes it again.
            body["sealedContent"] = seal_content(version.content)
        else:
            body["content"] = base64.b64encode(version.content).decode("ascii")
            body["etag"] = version.etag
    return _encode(body)


class DocumentRow(msgspec.Struct, frozen=True):
    content: bytes
    content_type: str
    etag: str
    updated: datetime
    position: int


def replay_documents(
    events: Iterable[tuple[int, str, str, datetime, bytes]],
    open_content: Callable[[str, str], bytes | None] | None = None,
) -> dict[RowKey, DocumentRow]:
    """Fold ``(position, tenant, event_type, stored, payload)`` in log order
    into the current documents; other event types are skipped.
    ``open_content(tenant, sealed)``: the content of a sealed document, or
    None once its agent was erased (the document is then gone)."""
    documents: dict[RowKey, DocumentRow] = {}
    for position, tenant, event_type, stored, payload in events:
        if event_type != DOCUMENT_EVENT:
            continue
        body = _decode(payload)
        resource = Resource(body["resource"])
        key: RowKey = (
            tenant,
            resource.value,
            body.get("activityId", ""),
            body.get("agentKey", ""),
            body.get("registration", ""),
            body[resource.id_param],
        )
        if body["op"] == "delete":
            documents.pop(key, None)
        else:
            if "sealedContent" in body:
                if open_content is None:
                    raise ValueError(f"the document at position {position} is sealed; no keys were given")
                opened = open_content(tenant, body["sealedContent"])
                if opened is None:
                    documents.pop(key, None)
                    continue
                content = opened
            else:
                content = base64.b64decode(body["content"])
            etag = body.get("etag") or etag_of(content)  # sealed events written since have none
            documents[key] = DocumentRow(content, body["contentType"], etag, stored, position)
    return documents
