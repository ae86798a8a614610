"""``POST /admin/erasures``: erase a learner of the credential's tenant
(scope ``erase``, which ``all`` does not include; docs/privacy.md).

Body: ``{"agent": {...an xAPI Agent...}, "reason": "..."}``.  200 with the
erasure (pseudonym, event position, key generations destroyed, documents
and attachments deleted); 404 when the tenant holds nothing of the learner;
409 when the learner was already erased, when Statements from before sealing
name them in clear, or when the service does not seal personal data.
"""

from __future__ import annotations

import msgspec
from aiohttp import web

from lrs.auth import Credential
from lrs.http import keys
from lrs.http.middleware import CREDENTIAL, LOG_FIELDS
from lrs.xapi.errors import NotFoundError, XapiError

__all__ = ["post_erasure"]


class ErasureRequest(msgspec.Struct, forbid_unknown_fields=True):
    agent: msgspec.Raw
    reason: str


_decode = msgspec.json.Decoder(ErasureRequest).decode


async def post_erasure(request: web.Request) -> web.Response:
    from lrs.documents.params import parse_agent
    from lrs.store.erasure import ErasureRefused, erase_learner

    credential: Credential = request[CREDENTIAL]
    learner_keys = request.app.get(keys.LEARNER_KEYS)
    if learner_keys is None:
        raise XapiError(409, "this service does not seal personal data (LRS_SEAL_PERSONAL_DATA), so it cannot erase by key")
    try:
        body = _decode(await request.read())
    except msgspec.DecodeError as exc:
        raise XapiError(400, f"the body must be {{\"agent\": {{...}}, \"reason\": \"...\"}}: {exc}") from None
    agent, _key = parse_agent(bytes(body.agent).decode(), "$.agent")
    try:
        erasure = await erase_learner(
            request.app[keys.POOL], learner_keys, credential.tenant, agent, reason=body.reason,
            by=f"credential:{credential.key}",
        )
    except ErasureRefused as exc:
        if exc.kind == "absent":
            raise NotFoundError(404, str(exc)) from None
        if exc.kind == "invalid":
            raise XapiError(400, str(exc), "$.reason") from None
        raise XapiError(409, str(exc)) from None
    request.setdefault(LOG_FIELDS, {}).update(event_position=erasure.position)
    relay = request.app.get(keys.RELAY)
    if relay is not None:
        relay.notify(erasure.position)
    return web.json_response({
        "pseudonym": erasure.pseudonym,
        "position": erasure.position,
        "generations": erasure.generations,
        "documents": erasure.documents,
        "attachments": erasure.attachments,
        "linked": erasure.linked,
    })
