"""The /competency/admin/ handlers (scope ``all``): loading a roster,
linking and unlinking a person's identifiers, listing the units and the
memberships (with their history)."""

from __future__ import annotations

import json
from datetime import datetime, timezone

from aiohttp import web

from lrs.http import keys
from lrs.identities import IdentityConflict
from lrs.store import identities
from lrs.store.learner_refs import open_refs
from lrs.xapi.errors import XapiError
from projections.http_requests import (
    ADMIN_SCOPE, flag_parameter, json_answer, limit_parameter, moment_parameter, only_parameters, shown_learners,
    stored_learner_in, tenant_of,
)
from projections.units import reads as unit_reads
from projections.units import store as units
from projections.units.roster import RosterError, parse_csv, parse_json, parse_learner

__all__ = ["get_memberships", "get_units", "post_identities", "post_roster"]

async def post_roster(request: web.Request) -> web.Response:
    """Body: a roster JSON document, or CSV (Content-Type text/csv) of units or memberships."""
    tenant = tenant_of(request, ADMIN_SCOPE)
    only_parameters(request, set())
    body = await request.read()
    try:
        if request.content_type == "text/csv":
            roster = parse_csv(body.decode("utf-8-sig").splitlines(), "body")
        elif request.content_type == "application/json":
            roster = parse_json(body, "body")
        else:
            raise XapiError(415, f"Content-Type must be application/json or text/csv, got {request.content_type!r}")
        result = await units.load_roster(
            request.config_dict[keys.POOL], tenant, roster, now=datetime.now(timezone.utc),
            learner_keys=request.config_dict.get(keys.LEARNER_KEYS),
        )
    except RosterError as exc:
        return json_answer({"error": "invalid roster", "status": 400, "problems": exc.problems}, status=400)
    except UnicodeDecodeError:
        raise XapiError(400, "the CSV body is not UTF-8") from None
    return json_answer({
        "units": result.units,
        "memberships": result.memberships,
        "learners": result.learners,
        "joined": result.joined,
        "moved": result.moved,
        "left": result.left,
        "roster_as_of": result.counted_at.isoformat(),
        "position": result.position,
    })


async def post_identities(request: web.Request) -> web.Response:
    """Body: {"op": "link" | "unlink", "person": KEY, "identifiers": [KEY, ...]}."""
    tenant = tenant_of(request, ADMIN_SCOPE)
    only_parameters(request, set())
    try:
        body = json.loads(await request.read())
    except ValueError as exc:
        raise XapiError(400, f"the body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise XapiError(400, "the body must be a JSON object", "$")
    unknown = sorted(set(body) - {"op", "person", "identifiers"})
    if unknown:
        raise XapiError(400, f"unknown field(s) {', '.join(unknown)}; allowed: identifiers, op, person", "$")
    op = body.get("op")
    if op not in ("link", "unlink"):
        raise XapiError(400, f"op must be link or unlink, got {op!r}", "$.op")
    person = body.get("person")
    identifiers = body.get("identifiers")
    if not isinstance(identifiers, list) or not identifiers:
        raise XapiError(400, "identifiers must be a non-empty list of actor IFI keys", "$.identifiers")
    for path, value in (("$.person", person), *((f"$.identifiers[{i}]", v) for i, v in enumerate(identifiers))):
        try:
            parse_learner(value if isinstance(value, str) else "")
        except ValueError as exc:
            error = XapiError(400, str(exc), path)
            error.logged = str(XapiError(400, "not an actor IFI key (the value is not logged)", path))
            raise error from None
    try:
        change = await identities.change_links(
            request.config_dict[keys.POOL], tenant, op, person, identifiers, now=datetime.now(timezone.utc),
            learner_keys=request.config_dict.get(keys.LEARNER_KEYS),
        )
    except IdentityConflict as exc:
        error = XapiError(409, str(exc), "$.identifiers")
        error.logged = str(XapiError(409, exc.logged, "$.identifiers"))
        raise error from None
    pool = request.config_dict[keys.POOL]
    linked = await identities.identifiers_of(pool, tenant, change.person)
    # Sealed (docs/privacy.md): the links hold pseudonym keys; those the body gave are answered in clear,
    # those linked before as officials see them (null once erased).
    clear = {v: k for k, v in change.refs.keys.items()} if change.refs is not None else {}
    earlier = await shown_learners(request.config_dict, pool, tenant, [i for i in linked if i not in clear])
    clear.update({key: who.identifier for key, who in earlier.items()})
    return json_answer({
        "op": op, "person": person, "changed": [clear.get(i, i) for i in change.identifiers],
        "identifiers": [person, *(clear.get(i, i) for i in linked)],
        **({} if change.position is None else {"position": change.position}),
    })


async def get_units(request: web.Request) -> web.Response:
    tenant = tenant_of(request, ADMIN_SCOPE)
    only_parameters(request, set())
    found = await unit_reads.fetch_units(request.config_dict[keys.POOL], tenant)
    return json_answer({
        "units": [
            {"id": u.unit_id, "parent": u.parent_id, "kind": u.kind, "name": u.name} for u in found.values()
        ]
    })


async def get_memberships(request: web.Request) -> web.Response:
    """Memberships by (learner, valid_from, recorded position); ``after_learner``
    + ``after_from`` + ``after_recorded`` page on; ``history=true`` also lists
    the superseded ones, with the roster events that recorded and superseded them."""
    tenant = tenant_of(request, ADMIN_SCOPE)
    only_parameters(request, {"unit", "learner", "limit", "after_learner", "after_from", "after_recorded", "history"})
    limit = limit_parameter(request, 1000, 10_000)
    after = None
    if "after_learner" in request.query:
        try:
            recorded = int(request.query.get("after_recorded", "-1"))
        except ValueError:
            raise XapiError(400, "after_recorded must be an integer", "after_recorded") from None
        if not -1 <= recorded < 2**63:
            raise XapiError(400, "after_recorded must be a log position (-1 to 2^63-1)", "after_recorded")
        after = (
            request.query["after_learner"],
            moment_parameter(request, "after_from") or datetime.min.replace(tzinfo=timezone.utc),
            recorded,
        )
    rows = await unit_reads.list_memberships(
        request.config_dict[keys.POOL], tenant, unit_id=request.query.get("unit"),
        learner=None if "learner" not in request.query else stored_learner_in(request, tenant, request.query["learner"]),
        after=after, limit=limit, history=flag_parameter(request, "history", False),
    )
    # Sealed (docs/privacy.md): each learner's clear key as the roster gave it, null once erased.
    learner_keys = request.config_dict.get(keys.LEARNER_KEYS)
    shown: dict[str, str | None] = {}
    if learner_keys is not None:
        sealed = await unit_reads.sealed_learners(request.config_dict[keys.POOL], rows)
        shown = await open_refs(learner_keys, tenant, sealed) if sealed else {}
    return json_answer({
        "memberships": [
            {
                "learner": r.membership.learner,
                **({"identifier": shown[r.membership.learner]} if r.membership.learner in shown else {}),
                "unit": r.membership.unit_id,
                "valid_from": r.membership.valid_from.isoformat(),
                "valid_to": None if r.membership.valid_to is None else r.membership.valid_to.isoformat(),
                "recorded_position": r.recorded_position,
                "recorded_at": _iso_or_none(r.recorded_at),
                "superseded_position": r.superseded_position,
                "superseded_at": _iso_or_none(r.superseded_at),
            }
            for r in rows
        ],
        "more": len(rows) == limit,
    })


def _iso_or_none(moment: datetime | None) -> str | None:
    if moment is None or moment in (datetime.min, datetime.max) or moment.year < 2:
        return None  # -infinity: loaded before the roster was in the log
    return moment.isoformat()
