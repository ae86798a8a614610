"""The Statements resource, ``/xapi/statements``: thin handlers, no SQL, no rules.

Each handler authorises, hands the body to the pure xAPI layer, and passes the
result to the store.  A 200 or 204 is only sent after the group-commit writer
has committed the statements.
"""

from __future__ import annotations

import email.utils
import math
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any

import msgspec
from aiohttp import web

from lrs.auth import Credential
from lrs.http import keys, multipart
from lrs.http.metrics import STATEMENTS_ACCEPTED_BY, STATEMENTS_REJECTED
from lrs.http.middleware import CREDENTIAL, LOG_FIELDS, XAPI_VERSION
from lrs.ingest.formats import format_statement, parse_accept_language
from lrs.ingest.prepare import prepare_statements
from lrs.ingest.cursor import decode_cursor, encode_cursor
from lrs.ingest.query import StatementFetch, more_token, parse_statement_query
from lrs.store import reader
from lrs.store.attachments import Blob, save_attachments
from lrs.store.ids import RandomUuids, parse_uuid
from lrs.store.gathering import Arrival
from lrs.store.writer import KeyErasedMeanwhile, KeyTakenMeanwhile, WriterClosedError
from lrs.privacy import statement_agents
from lrs.xapi.equivalence import statements_equivalent
from lrs.xapi.errors import ConflictError, NotFoundError, XapiError
from lrs.xapi.identity import authority_key
from lrs.xapi.statement import parse_statement, parse_statements

_encode = msgspec.json.Encoder().encode
_new_statement_id = RandomUuids()
_JSON_TYPES = frozenset({"application/json"})


def authority_for(credential: Credential, homepage: str) -> dict[str, Any]:
    """The Agent (or, for an OAuth client acting for a user, the Group of the two)
    the LRS records as ``authority`` for statements this credential sends."""
    if credential.authority is not None:
        return dict(credential.authority)
    return {
        "objectType": "Agent",
        "name": credential.name or credential.key,
        "account": {"homePage": homepage, "name": credential.key},
    }


def read_restriction(credential: Credential, homepage: str, learner_keys: Any = None) -> str | None:
    """statements/read/mine: the authority (IFI key) the Statements this
    credential may read must have (the one the LRS assigns to its writes,
    Communication 4.2); None when it reads every Statement of its tenant."""
    if credential.allows("statements/read"):
        return None
    authority = authority_for(credential, homepage)
    if learner_keys is not None:  # stored Statements carry the sealed authority
        authority = learner_keys.pseudonymous(credential.tenant, authority)
    return authority_key(authority)


def _json(payload: Any, status: int = 200) -> web.Response:
    # X-Experience-API-Consistent-Through is added to every statements response
    # by lrs.http.middleware.common_headers.
    return web.Response(status=status, body=_encode(payload), content_type="application/json")


async def _read_json_body(request: web.Request) -> bytes:
    if request.content_type not in _JSON_TYPES:
        raise XapiError(
            400, f"Content-Type must be application/json or multipart/mixed, got {request.content_type!r}",
            "Content-Type",
        )
    body = await request.read()
    if not body:
        raise XapiError(400, "request body is empty")
    return body


class _received_statements:
    """``async with _received_statements(request, parse) as (statements, attachments, array)``:
    the validated Statements of a PUT/POST and the attachment data it carried
    (``application/json``: none, so every Attachment needs a fileUrl;
    ``multipart/mixed``: see :mod:`lrs.http.multipart`), and whether the body
    was an array.  Spooled data is released on exit.  (A class rather than an
    ``asynccontextmanager``, whose async generator cost every request a few
    microseconds.)"""

    __slots__ = ("_request", "_parse", "_upload")

    def __init__(self, request: web.Request, parse: Callable[[bytes], list[dict[str, Any]]]) -> None:
        self._request = request
        self._parse = parse
        self._upload: multipart.StatementUpload | None = None

    async def __aenter__(self) -> tuple[list[dict[str, Any]], list[Blob], bool]:
        request = self._request
        try:
            if multipart.is_multipart_mixed(request.content_type):
                upload = await multipart.read_statement_upload(request, self._parse)
            else:
                body = await _read_json_body(request)
                statements = self._parse(body)
                array = body.lstrip()[:1] == b"["
                multipart.check_json_attachments(statements, array=array)
                upload = multipart.StatementUpload(statements, array=array)
        except XapiError as exc:
            STATEMENTS_REJECTED.labels(str(exc.status)).inc()
            raise
        self._upload = upload
        return upload.statements, list(upload.parts.values()), upload.array

    async def __aexit__(self, *_exc: object) -> None:
        if self._upload is not None:
            self._upload.close()


async def _append(
    request: web.Request, statements: list[dict[str, Any]], attachments: Sequence[Blob] = (), *,
    array: bool = True, arrival: Arrival | None = None,
) -> list[Any]:
    credential: Credential = request[CREDENTIAL]
    settings = request.app[keys.SETTINGS]
    learner_keys = request.app.get(keys.LEARNER_KEYS)
    writer = request.app[keys.WRITER]
    # Attachment bytes first, outside the writer's transaction: content-addressed,
    # so a blob whose Statements are then refused is a harmless orphan
    # (lrs.store.attachments explains).
    if attachments:
        await save_attachments(request.app[keys.POOL], credential.tenant, attachments)
    homepage = settings.authority_home
    defines = credential.allows("define")
    try:
        # Keys of learners this process has not cached are made here and
        # stored by the group commit (lrs.store.group_keys); when another
        # process's key came first, sealed again with it.
        attempt, make_keys = 1, True
        while True:
            authority = authority_for(credential, homepage)
            key_epoch, key_refs, ciphertexts, new_keys, sealed = None, frozenset(), {}, {}, None
            unconfirmed, unconfirmed_since = {}, math.inf
            clear = statements
            if learner_keys is not None:  # personal data is stored sealed (docs/privacy.md)
                sealed = await learner_keys.seal_statements(credential.tenant, statements, authority,
                                                            make_keys=make_keys)
                clear, authority, key_epoch, key_refs = sealed.statements, sealed.authority, sealed.epoch, sealed.refs
                ciphertexts, new_keys = sealed.ciphertexts, sealed.new_keys
                unconfirmed, unconfirmed_since = sealed.unconfirmed, sealed.unconfirmed_since

            def prepare(bodies: list[dict[str, Any]], authority: dict[str, Any] = authority) -> list[Any]:
                return prepare_statements(
                    bodies,
                    version=request[XAPI_VERSION],
                    authority=authority,
                    new_id=_new_statement_id,
                    max_statements=settings.max_batch_statements,
                    parse_id=parse_uuid,
                )

            prepared = prepare(clear)
            try:
                try:
                    results = await writer.append(
                        credential.tenant, prepared, defines=defines,
                        key_epoch=key_epoch, key_refs=key_refs, ciphertexts=ciphertexts, new_keys=new_keys,
                        unconfirmed_keys=unconfirmed, unconfirmed_since=unconfirmed_since,
                        arrival=arrival,
                    )
                except ConflictError:
                    # Stored before in another form (v2, clear) and sent again?
                    as_stored = None if sealed is None else await _as_stored(
                        request, statements, clear, prepare(statements, authority_for(credential, homepage))
                    )
                    if as_stored is None:
                        raise
                    results = await writer.append(
                        credential.tenant, prepare(as_stored), defines=defines,
                        key_epoch=key_epoch, key_refs=key_refs, ciphertexts=ciphertexts, new_keys=new_keys,
                        unconfirmed_keys=unconfirmed, unconfirmed_since=unconfirmed_since,
                        arrival=arrival,
                    )
                if sealed is not None:
                    # its ciphertexts were committed with the Statements, and its keys are on disk
                    learner_keys.stored(sealed, inserted=any(r.inserted for r in results))
                break
            except KeyTakenMeanwhile as taken:
                # Sealed under a key made here for a learner that has
                # another: once more with the live keys (read or made by
                # PostgreSQL for any without one), which cannot be refused so.
                learner_keys.taken(sealed, taken.keys, taken.checked)
                make_keys = False
            except KeyErasedMeanwhile:
                # Sealed before this process heard of an erasure: once more
                # with the keys as they are now, then 503.
                learner_keys.catch_up(writer.key_epoch)
                if attempt == 2:
                    raise web.HTTPServiceUnavailable(
                        text="a learner named in the request was being erased; nothing was stored, retry",
                        headers={"Retry-After": "1"},
                    ) from None
                attempt += 1
        if learner_keys is not None:
            learner_keys.catch_up(writer.key_epoch)
    except XapiError as exc:
        STATEMENTS_REJECTED.labels(str(exc.status)).inc()
        if not array and exc.path is not None and exc.path.startswith("$[0]"):
            # the writer names statements by index; a body of one statement is "$"
            exc.path = "$" + exc.path[len("$[0]"):]
        raise
    except WriterClosedError:
        raise web.HTTPServiceUnavailable(
            text="the service is shutting down; nothing was stored, retry", headers={"Retry-After": "1"}
        ) from None
    inserted = sum(1 for r in results if r.inserted)
    if inserted:
        STATEMENTS_ACCEPTED_BY(credential.tenant).inc(inserted)
    log_fields = request.get(LOG_FIELDS)
    if log_fields is None:
        request[LOG_FIELDS] = {"statements": len(results), "inserted": inserted}
    else:
        log_fields.update(statements=len(results), inserted=inserted)
    return results


async def _as_stored(
    request: web.Request, sent: list[dict[str, Any]], sealed: list[dict[str, Any]], clear: list[Any]
) -> list[dict[str, Any]] | None:
    """``sealed`` (the sent Statements sealed) with each whose id is stored,
    and whose stored Statement once opened is the same Statement
    (``clear``: the sent ones prepared unsealed), naming its identities as
    the stored one does: the sealed form of a Statement depends on the build
    and settings that stored it (v2 before v3, clear before sealing), and
    the same Statement sent again is a no-op, not a conflict (xAPI).  None
    when there is none such."""
    credential: Credential = request[CREDENTIAL]
    learner_keys = request.app[keys.LEARNER_KEYS]
    indexes: dict[uuid.UUID, list[int]] = {}
    for index, statement in enumerate(clear):
        if "id" in sent[index]:
            indexes.setdefault(statement.statement_id, []).append(index)
    stored = await reader.stored_statements(request.app[keys.POOL], credential.tenant, list(indexes))
    if not stored:
        return None
    ids = list(stored)
    opened = await learner_keys.open_payloads(credential.tenant, [stored[i] for i in ids])
    restated, changed = list(sealed), False
    for statement_id, opened_payload in zip(ids, opened):
        opened_statement = msgspec.json.decode(opened_payload)
        for index in indexes[statement_id]:
            if statements_equivalent(opened_statement, clear[index].body):
                replaced = statement_agents.with_identities_of(restated[index], msgspec.json.decode(stored[statement_id]))
                if replaced is not None:
                    restated[index], changed = replaced, True
    return restated if changed else None


def _announce(request: web.Request) -> Arrival:
    """Announced to the writer before the body is read: the group being
    gathered waits for it, and for its connection to come back after the
    answer unless the connection closes then (lrs.store.gathering)."""
    arrival: Arrival = request.app[keys.WRITER].arrival(request.protocol)
    if not request.keep_alive:
        arrival.last_on_connection()
    return arrival


async def post_statements(request: web.Request) -> web.Response:
    if request.query:
        raise XapiError(400, f"unexpected query parameter(s) on POST: {', '.join(sorted(request.query))}")
    version = request[XAPI_VERSION]
    arrival = _announce(request)
    try:
        async with _received_statements(request, lambda body: parse_statements(body, version)) as (
            statements,
            attachments,
            array,
        ):
            results = await _append(request, statements, attachments, array=array, arrival=arrival)
    finally:
        arrival.close()
    return _json([str(r.statement_id) for r in results])


async def put_statement(request: web.Request) -> web.Response:
    unknown = set(request.query) - {"statementId"}
    if unknown:
        raise XapiError(400, f"unexpected query parameter(s) on PUT: {', '.join(sorted(unknown))}")
    raw_id = request.query.get("statementId")
    if raw_id is None:
        raise XapiError(400, "PUT requires the statementId query parameter", "statementId")
    statement_id = _parse_uuid(raw_id, "statementId")
    version = request[XAPI_VERSION]
    arrival = _announce(request)
    try:
        async with _received_statements(request, lambda body: [parse_statement(body, version)]) as (
            statements,
            attachments,
            _,
        ):
            statement = statements[0]
            if "id" in statement and _parse_uuid(statement["id"], "$.id") != statement_id:
                raise XapiError(400, f"statement id {statement['id']} does not match statementId {raw_id}", "$.id")
            statement["id"] = str(statement_id)
            await _append(request, [statement], attachments, array=False, arrival=arrival)
    finally:
        arrival.close()
    return web.Response(status=204)


def _parse_uuid(raw: str, where: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except (ValueError, AttributeError, TypeError):
        raise XapiError(400, f"{raw!r} is not a UUID", where) from None


async def get_statements(request: web.Request) -> web.Response:
    credential: Credential = request[CREDENTIAL]
    settings = request.app[keys.SETTINGS]
    pool = request.app[keys.STATEMENT_READS]
    learner_keys = request.app.get(keys.LEARNER_KEYS)
    mine = read_restriction(credential, settings.authority_home, learner_keys)
    languages = parse_accept_language(request.headers.get("Accept-Language", ""))
    token = more_token(request.query)
    if token is not None:
        query, after = decode_cursor(request.app[keys.CURSOR_SECRET], credential.key, credential.tenant, token)
    else:
        parsed = parse_statement_query(
            request.query, default_limit=settings.page_size_default, max_limit=settings.page_size_max
        )
        if isinstance(parsed, StatementFetch):
            body = await reader.get_statement(
                pool, credential.tenant, parsed.statement_id, voided=parsed.voided, authority=mine
            )
            if body is None:
                raise NotFoundError(404, f"no statement with id {parsed.statement_id}")
            if learner_keys is not None:
                [body] = await learner_keys.open_payloads(credential.tenant, [body])
            statement = msgspec.json.decode(body)
            formatted = format_statement(statement, parsed.format, languages)
            # Last-Modified matches the Statement's stored time (Communication 2.1.3).
            last_modified = {"Last-Modified": _http_date(statement["stored"])}
            if parsed.attachments:
                return await _with_attachments(request, _encode(formatted), [statement], last_modified)
            response = _json(formatted)
            response.headers.update(last_modified)
            return response
        query, after = parsed, None
        if learner_keys is not None and query.agent is not None:
            # Stored Statements name identities by pseudonym (the cursor keeps this form).
            query = msgspec.structs.replace(query, agent=learner_keys.pseudonym_key(credential.tenant, query.agent))
    bodies, last_position, has_more = await reader.query_statements(
        pool, credential.tenant, query, after_position=after, limit=query.limit, authority=mine,
        pair_keys=request.app[keys.PAIR_KEYS],
    )
    if learner_keys is not None:
        bodies = await learner_keys.open_payloads(credential.tenant, bodies)
    more = ""
    if has_more:
        token = encode_cursor(
            request.app[keys.CURSOR_SECRET], credential.key, credential.tenant, query, last_position
        )
        more = f"/xapi/statements?more={token}"
    if query.format == "exact":
        # Stored bodies are already the exact JSON: splice them, no re-encoding.
        payload = b'{"statements":[' + b",".join(bodies) + b'],"more":' + _encode(more) + b"}"
    else:
        statements = [format_statement(msgspec.json.decode(b), query.format, languages) for b in bodies]
        payload = _encode({"statements": statements, "more": more})
    if query.attachments:
        return await _with_attachments(request, payload, [msgspec.json.decode(b) for b in bodies])
    return web.Response(body=payload, content_type="application/json")


def _http_date(stored: str) -> str:
    moment = datetime.fromisoformat(stored.replace("Z", "+00:00"))
    return email.utils.format_datetime(moment.astimezone(timezone.utc), usegmt=True)


async def _with_attachments(
    request: web.Request, payload: bytes, statements: list[dict[str, Any]], headers: dict[str, str] | None = None
) -> web.StreamResponse:
    """``attachments=true``: the JSON and the attachment data as multipart/mixed (2.1.3.s2.b6)."""
    return await multipart.statements_response(
        request,
        payload,
        statements,
        pool=request.app[keys.POOL],
        tenant=request[CREDENTIAL].tenant,
        headers=headers or {},
    )
