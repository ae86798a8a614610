"""The document resources: ``/xapi/activities/state``, ``/xapi/activities/profile``
and ``/xapi/agents/profile``.  Thin handlers: parameters and rules come from
:mod:`lrs.documents`, every write goes through :class:`lrs.store.documents.DocumentStore`
(one event per changed document), and the relay is woken after the commit.

Scopes: the State resource needs ``state``, the profile resources ``profile``;
``all/read`` also allows reading, ``all`` everything.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone
from typing import Any, Callable
from email.utils import format_datetime

import msgspec
from aiohttp import web

from lrs.auth import Credential
from lrs.documents.concurrency import Preconditions, etag_of
from lrs.documents.content import content_type_of
from lrs.documents.model import Resource
from lrs.documents.params import DocumentRequest, parse_document_params
from lrs.documents.writes import plan_delete, plan_post, plan_put
from lrs.http import keys
from lrs.http.middleware import CREDENTIAL, LOG_FIELDS, XAPI_VERSION
from lrs.privacy import seal, sealed_text, statement_agents
from lrs.store.documents import DocumentStore, WriteResult
from lrs.store.writer import KeyErasedMeanwhile
from lrs.xapi.errors import NotFoundError

__all__ = ["activity_profile", "add_routes", "agent_profile", "http_date", "state"]

_encode = msgspec.json.Encoder().encode
READ_METHODS = frozenset({"GET", "HEAD"})


def add_routes(app: web.Application) -> None:
    """Register the document resources and /xapi/activities and /xapi/agents."""
    from lrs.http.activities import activities, agents

    for path, handler in (
        ("/xapi/activities/state", state),
        ("/xapi/activities/profile", activity_profile),
        ("/xapi/agents/profile", agent_profile),
    ):
        app.router.add_get(path, handler)  # HEAD too
        app.router.add_put(path, handler)
        app.router.add_post(path, handler)
        app.router.add_delete(path, handler)
    app.router.add_get("/xapi/activities", activities)
    app.router.add_get("/xapi/agents", agents)


async def state(request: web.Request) -> web.Response:
    return await _handle(request, Resource.STATE)


async def activity_profile(request: web.Request) -> web.Response:
    return await _handle(request, Resource.ACTIVITY_PROFILE)


async def agent_profile(request: web.Request) -> web.Response:
    return await _handle(request, Resource.AGENT_PROFILE)


def http_date(moment: datetime) -> str:
    """RFC 7231 HTTP-date (Last-Modified)."""
    return format_datetime(moment.astimezone(timezone.utc), usegmt=True)


async def _handle(request: web.Request, resource: Resource) -> web.Response:
    parsed = parse_document_params(resource, request.method, request.query.items())
    learner_keys = request.app.get(keys.LEARNER_KEYS)
    sealing = learner_keys is not None and bool(parsed.context.agent_key)
    for attempt in (1, 2):
        try:
            return await _serve(request, resource, learner_keys if sealing else None, parsed)
        except KeyErasedMeanwhile:
            # Sealed before this process heard of an erasure: once more with
            # the keys as they are now, then 503.
            await learner_keys.load_epoch()
            if attempt == 2:
                raise web.HTTPServiceUnavailable(
                    text="the learner named in the request was being erased; nothing was stored, retry",
                    headers={"Retry-After": "1"},
                ) from None
    raise AssertionError("unreachable")


async def _serve(
    request: web.Request, resource: Resource, learner_keys: Any, parsed: DocumentRequest
) -> web.Response:
    method = request.method
    credential: Credential = request[CREDENTIAL]
    tenant = credential.tenant
    seal_content, key_refs = None, frozenset()
    if learner_keys is not None:
        parsed, seal_content, key_refs = await _sealed(learner_keys, tenant, parsed, writing=method not in READ_METHODS)
    store = DocumentStore(request.app[keys.POOL], seal_content=seal_content, key_refs=key_refs)
    if method in READ_METHODS:
        if parsed.document_id is None:
            return await _list_ids(store, tenant, parsed)
        return await _get_one(store, tenant, parsed)
    preconditions = Preconditions(request.headers.get("If-Match"), request.headers.get("If-None-Match"))
    version = request[XAPI_VERSION]
    if method == "DELETE":
        if parsed.document_id is None:
            result = await store.delete_all(tenant, parsed.context)
        else:
            result = await store.delete(
                tenant, parsed.key, lambda current: plan_delete(resource, current, preconditions, version)
            )
    else:
        content = await request.read()
        content_type = content_type_of(request.headers.get("Content-Type"))
        plan = plan_put if method == "PUT" else plan_post
        result = await store.put(
            tenant, parsed.key, method.lower(),
            lambda current: plan(resource, current, content, content_type, preconditions, version),
        )
    _committed(request, result)
    response = web.Response(status=204)
    if result.version is not None:
        response.headers["ETag"] = result.version.etag
    return response


async def _sealed(
    learner_keys, tenant: str, parsed: DocumentRequest, *, writing: bool
) -> tuple[DocumentRequest, Callable[[bytes], str] | None, frozenset[tuple[str, int]]]:
    """The request with its agent as stored when personal data is sealed
    (docs/privacy.md): known by pseudonym, the Agent sealed, and, for a
    write, the function that seals the content for the log."""
    ident = parsed.context.agent_key
    stored_key = learner_keys.pseudonym_key(tenant, ident)
    if not writing:
        return replace(parsed, context=replace(parsed.context, agent_key=stored_key, agent=None)), None, frozenset()
    agent = parsed.context.agent
    idents = {ident} | (statement_agents.identities({"actor": agent}) if agent else set())
    found = await learner_keys.keys_for_writing(tenant, idents)
    key = found[ident]
    sealed_agent = seal.seal_agent(agent, found, lambda k, text: sealed_text.seal_bytes(k, tenant, text)) if agent else None
    context = replace(parsed.context, agent_key=stored_key, agent=sealed_agent)
    refs = frozenset((k.pseudonym, k.generation) for k in found.values())
    return replace(parsed, context=context), lambda content: sealed_text.seal_bytes(key, tenant, content), refs


async def _get_one(store: DocumentStore, tenant: str, parsed: DocumentRequest) -> web.Response:
    document = await store.get(tenant, parsed.key)
    if document is None:
        raise NotFoundError(404, f"no document with {parsed.context.resource.id_param} {parsed.document_id!r}")
    return web.Response(
        body=document.content,
        headers={
            "Content-Type": document.content_type,
            "ETag": document.etag,
            "Last-Modified": http_date(document.updated),
        },
    )


async def _list_ids(store: DocumentStore, tenant: str, parsed: DocumentRequest) -> web.Response:
    ids, last_updated = await store.list_ids(tenant, parsed.context, parsed.since)
    body = _encode(ids)
    headers = {"Content-Type": "application/json", "ETag": etag_of(body)}
    if last_updated is not None:
        headers["Last-Modified"] = http_date(last_updated)
    return web.Response(body=body, headers=headers)


def _committed(request: web.Request, result: WriteResult) -> None:
    request.setdefault(LOG_FIELDS, {}).update(event_position=result.position)
    relay = request.app.get(keys.RELAY)
    if relay is not None and result.position is not None:
        relay.notify(result.position)
