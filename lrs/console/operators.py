"""Operators' pages: ingest, relay and projection lag, parked events (with a
retry), refused statements, audit status, credentials and the statement browser.

Reads go through the store functions the API and the CLI use
(``lrs.store.*``; the projection's through the port the console declares,
:class:`lrs.console.ports.ProjectionOperations`), writes through the same
calls as ``lrs credentials create/revoke``.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import msgspec
from aiohttp import web

from lrs import relay as relay_module
from lrs.auth import hash_secret, new_key_and_secret, validate_scopes, SCOPES
from lrs.console.audit_status import audit_status
from lrs.console.render import error_page, render
from lrs.http import keys
from lrs.http.metrics import STATEMENTS_REJECTED
from lrs.http.middleware import CREDENTIAL
from lrs.http.statements import read_restriction
from lrs.ingest.cursor import decode_cursor, encode_cursor
from lrs.ingest.query import StatementQuery, parse_statement_query
from lrs.store import credentials as credential_store
from lrs.store import reader
from lrs.store.checkpoints import get_checkpoint
from lrs.store.log_reader import last_position
from lrs.xapi.errors import XapiError
FILTER_FIELDS = (
    "agent", "verb", "activity", "registration", "since", "until",
    "related_activities", "related_agents", "ascending", "limit",
)


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/operations", operations_page, name="operations")
    router.add_post("/operations/parked/{position}/retry", retry_parked, name="parked_retry")
    router.add_get("/credentials", credentials_page, name="credentials")
    router.add_post("/credentials", create_credential, name="credential_create")
    router.add_post("/credentials/{key}/revoke", revoke_credential, name="credential_revoke")
    router.add_get("/statements", statements_page, name="statements")
    router.add_get("/statements/{id}", statement_page, name="statement")


# -- operations ----------------------------------------------------------------------


def _rejected_here() -> int:
    """Statement write requests this process refused (4xx/5xx), by the Prometheus counter."""
    total = 0.0
    for family in STATEMENTS_REJECTED.collect():
        for sample in family.samples:
            if sample.name.endswith("_total"):
                total += sample.value
    return int(total)


async def operations_page(request: web.Request) -> web.StreamResponse:
    pool = request.config_dict[keys.POOL]
    tenant = request[CREDENTIAL].tenant
    projection = request.config_dict[keys.CONSOLE_COMPETENCY]
    now = datetime.now(timezone.utc)
    head = await last_position(pool)
    async with pool.acquire() as conn:
        minute_ago = await projection.position_at(conn, now - timedelta(minutes=1))
        five_ago = await projection.position_at(conn, now - timedelta(minutes=5))
    relay_at = await get_checkpoint(pool, relay_module.DEFAULT_NAME)
    settings = request.config_dict[keys.SETTINGS]
    relay_configured = settings.relay_enabled and request.config_dict.get(keys.NATS_URL) is not None
    projection_at = await projection.checkpoint_position(pool)
    supervisor = projection.runner(request.config_dict)
    runner_here = supervisor is not None
    retries = await projection.recent_requests(pool, tenant)
    context = {
        "head": head,
        "last_minute": head - minute_ago,
        "last_5_minutes": head - five_ago,
        "relay": {"checkpoint": relay_at, "lag": head - relay_at, "configured": relay_configured},
        "projection": {
            "checkpoint": projection_at,
            "lag": None if projection_at is None else head - projection_at,
            "running_here": runner_here,
            "state": supervisor.state if supervisor is not None else None,
            **(supervisor.reason_json() if supervisor is not None else {"reason": None}),
        },
        "parked": await projection.parked_events(pool, tenant),
        "rejected": _rejected_here(),
        "audit": await audit_status(pool, settings, now),
        "retries": retries,
        "retrying": {r.position: r for r in reversed(retries) if r.open},
    }
    return render("operations.html", request, context)


async def retry_parked(request: web.Request) -> web.StreamResponse:
    """Asks the projection's leading runner, in whichever process it runs, to
    apply the parked event again (:meth:`ProjectionOperations.request_retry`)."""
    raw = request.match_info["position"]
    position = int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 18 else 0
    if position < 1:  # a log position: 1 up to what a bigint holds (more would fail in PostgreSQL: a 500)
        return _error(request, 400, f"position must be a log position (a positive integer), got {raw!r}")
    pool = request.config_dict[keys.POOL]
    credential = request[CREDENTIAL]
    projection = request.config_dict[keys.CONSOLE_COMPETENCY]
    if not await projection.is_parked(pool, position, credential.tenant):
        return _error(request, 404, f"no event at position {position} is parked for tenant {credential.tenant!r}")
    request_id = await projection.request_retry(pool, position, credential.tenant, credential.key)
    location = request.app.router["operations"].url_for().with_query({"requested": str(request_id)})
    raise web.HTTPSeeOther(location.with_fragment("retries"))


# -- credentials --------------------------------------------------------------------


async def credentials_page(request: web.Request, *, created: dict[str, str] | None = None,
                           problem: str | None = None, status: int = 200) -> web.Response:
    tenant = request[CREDENTIAL].tenant
    records = await credential_store.list_credentials(request.config_dict[keys.POOL], tenant)
    return render(
        "credentials.html", request,
        {
            "records": records, "all_scopes": sorted(SCOPES), "created": created, "problem": problem,
            "revoked_key": request.query.get("revoked"),
        },
        status=status,
    )


async def create_credential(request: web.Request) -> web.StreamResponse:
    """Like ``lrs credentials create``, in the signed-in credential's tenant only."""
    form = await request.post()
    scopes = [s for s in form.getall("scope", []) if isinstance(s, str)]
    name = form.get("name")
    name = name.strip() if isinstance(name, str) and name.strip() else None
    try:
        checked = validate_scopes(scopes)
    except ValueError as exc:
        return await credentials_page(request, problem=str(exc), status=400)
    tenant = request[CREDENTIAL].tenant
    key, secret = new_key_and_secret()
    await credential_store.insert_credential(
        request.config_dict[keys.POOL], key=key, secret_hash=hash_secret(secret), tenant=tenant,
        scopes=sorted(checked), name=name,
    )
    return await credentials_page(request, created={"key": key, "secret": secret})


async def revoke_credential(request: web.Request) -> web.StreamResponse:
    key = request.match_info["key"]
    pool = request.config_dict[keys.POOL]
    record = await credential_store.fetch_credential(pool, key)
    if record is None or record.tenant != request[CREDENTIAL].tenant:  # other tenants' keys do not exist here
        return _error(request, 404, f"no credential {key!r}")
    await credential_store.revoke_credential(pool, key)
    request.config_dict[keys.AUTHENTICATOR].forget(key)  # this process stops accepting it at once
    raise web.HTTPSeeOther(request.app.router["credentials"].url_for().with_query({"revoked": key}))


# -- statements ---------------------------------------------------------------------


async def statements_page(request: web.Request) -> web.StreamResponse:
    credential = request[CREDENTIAL]
    settings = request.config_dict[keys.SETTINGS]
    pool = request.config_dict[keys.POOL]
    secret = request.config_dict[keys.CURSOR_SECRET]
    filters = {name: request.query[name] for name in FILTER_FIELDS if request.query.get(name, "").strip()}
    learner_keys = request.config_dict.get(keys.LEARNER_KEYS)
    mine = read_restriction(credential, settings.authority_home, learner_keys)
    problem = None
    rows: list[dict[str, Any]] = []
    more = None
    try:
        token = request.query.get("more")
        if token:
            query, after = decode_cursor(secret, credential.key, credential.tenant, token)
        else:
            parsed = parse_statement_query(
                {**filters, "limit": filters.get("limit", "25")},
                default_limit=settings.page_size_default, max_limit=settings.page_size_max,
            )
            assert isinstance(parsed, StatementQuery)  # the form has no statementId field
            query, after = parsed, None
            if learner_keys is not None and query.agent is not None:  # stored by pseudonym (docs/privacy.md)
                query = msgspec.structs.replace(query, agent=learner_keys.pseudonym_key(credential.tenant, query.agent))
        bodies, last, has_more = await reader.query_statements(
            pool, credential.tenant, query, after_position=after, limit=query.limit, authority=mine
        )
        if learner_keys is not None:
            bodies = await learner_keys.open_payloads(credential.tenant, bodies)
        rows = [_row(msgspec.json.decode(body)) for body in bodies]
        if has_more:
            more = encode_cursor(secret, credential.key, credential.tenant, query, last)
    except XapiError as exc:
        problem = exc.message + (f" ({exc.path})" if exc.path else "")
    return render(
        "statements.html", request,
        {"filters": filters, "rows": rows, "more": more, "problem": problem},
        status=400 if problem else 200,
    )


def _row(statement: dict[str, Any]) -> dict[str, Any]:
    actor = statement.get("actor", {})
    account = actor.get("account") or {}
    who = actor.get("name") or actor.get("mbox") or actor.get("openid") or actor.get("mbox_sha1sum") \
        or (f"{account.get('name')} @ {account.get('homePage')}" if account else "")
    target = statement.get("object", {})
    return {
        "id": statement.get("id"),
        "stored": statement.get("stored"),
        "actor": who,
        "verb": statement.get("verb", {}).get("id"),
        "object": target.get("id") or target.get("objectType"),
    }


async def statement_page(request: web.Request) -> web.StreamResponse:
    credential = request[CREDENTIAL]
    settings = request.config_dict[keys.SETTINGS]
    raw = request.match_info["id"]
    try:
        statement_id = uuid.UUID(raw)
    except ValueError:
        return _error(request, 400, f"{raw!r} is not a UUID")
    learner_keys = request.config_dict.get(keys.LEARNER_KEYS)
    mine = read_restriction(credential, settings.authority_home, learner_keys)
    pool = request.config_dict[keys.POOL]
    body = await reader.get_statement(pool, credential.tenant, statement_id, voided=False, authority=mine)
    voided = False
    if body is None:
        body = await reader.get_statement(pool, credential.tenant, statement_id, voided=True, authority=mine)
        voided = body is not None
    if body is None:
        return _error(request, 404, f"no statement with id {statement_id}")
    if learner_keys is not None:
        [body] = await learner_keys.open_payloads(credential.tenant, [body])
    pretty = json.dumps(json.loads(body), indent=2, ensure_ascii=False)
    return render(
        "statement.html", request, {"statement_id": str(statement_id), "json": pretty, "voided": voided}
    )


def _error(request: web.Request, status: int, text: str) -> web.Response:
    return error_page(request, status, text)
