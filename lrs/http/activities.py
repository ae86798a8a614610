"""``/xapi/activities`` (the canonical Activity Object) and ``/xapi/agents``
(the Person Object).  Readable with any scope that reads something:
``all/read``, ``statements/read`` or ``/read/mine``, ``define``, ``profile``
or ``state``; a write-only credential gets 403.
"""

from __future__ import annotations

import msgspec
from aiohttp import web

from lrs.auth import Credential
from lrs.documents.activities import activity_object
from lrs.documents.agents import person_from_identifiers
from lrs.identities import agent_of_key
from lrs.store import identities
from lrs.documents.concurrency import etag_of
from lrs.documents.params import parse_activity_id, parse_agent, query_dict
from lrs.http import keys
from lrs.http.middleware import CREDENTIAL
from lrs.store.activities import agent_names, get_definition
from lrs.xapi.errors import XapiError

__all__ = ["activities", "agents"]

_encode = msgspec.json.Encoder().encode


def _single_param(request: web.Request, name: str) -> str:
    params = query_dict(request.query.items())
    unknown = sorted(set(params) - {name})
    if unknown:
        raise XapiError(400, f"unknown parameter {unknown[0]!r}", unknown[0])
    if name not in params:
        raise XapiError(400, f"the {name} parameter is required", name)
    return params[name]


def _json(payload: object) -> web.Response:
    body = _encode(payload)
    return web.Response(body=body, headers={"Content-Type": "application/json", "ETag": etag_of(body)})


async def activities(request: web.Request) -> web.Response:
    credential: Credential = request[CREDENTIAL]
    activity_id = parse_activity_id(_single_param(request, "activityId"))
    definition = await get_definition(request.app[keys.POOL], credential.tenant, activity_id)
    return _json(activity_object(activity_id, definition))


async def agents(request: web.Request) -> web.Response:
    credential: Credential = request[CREDENTIAL]
    agent, agent_key = parse_agent(_single_param(request, "agent"))
    pool = request.app[keys.POOL]
    # The identifiers known to be this person: the requested Agent first,
    # then every identifier the roster links to the same person.
    person = await identities.person_of(pool, credential.tenant, agent_key) or agent_key
    others = [k for k in [person, *await identities.identifiers_of(pool, credential.tenant, person)] if k != agent_key]
    agents_ = [agent, *(agent_of_key(k) for k in others)]
    names: list[str] = []
    for key in [agent_key, *others]:
        names += await agent_names(pool, credential.tenant, key, learner_keys=request.app.get(keys.LEARNER_KEYS))
    return _json(person_from_identifiers(agents_, names))
