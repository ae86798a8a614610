"""The /competency/... JSON API and the projection runner inside ``lrs serve``.

Reading needs a credential with scope ``all/read`` (or ``all``); the admin
resources under /competency/admin/ need ``all``.  Every answer is for the
credential's tenant only and carries ``position``, the log position it
reflects (also sent as the ``X-LRS-Position`` header).

A learner is named in the path by the canonical key of the actor's inverse
functional identifier (:func:`lrs.xapi.identity.ifi_key`), percent-encoded
as one path segment (``urllib.parse.quote(key, safe="")``,
``encodeURIComponent(key)``): ``mbox:mailto:a@example.org`` is
``mbox%3Amailto%3Aa%40example.org``;
``account:https://sso.example.gov.vn|0123`` is
``account%3Ahttps%3A%2F%2Fsso.example.gov.vn%7C0123``.
"""

from __future__ import annotations

import asyncio
import json
from datetime import date, datetime, timezone
from typing import Any, AsyncIterator, Callable

import msgspec
import structlog
from aiohttp import web

from lrs.http import keys
from lrs.store.learner_refs import open_refs
from lrs.identities import IdentityConflict
from lrs.store import identities
from lrs.http.middleware import CREDENTIAL
from lrs.xapi.errors import NotFoundError, XapiError
from projections.competency.catalog import Catalog, load_live_catalog
from projections.competency.frameworks import FrameworkError
from projections.competency.queries import (
    QueryError,
    learner_view,
    mastery_mismatches,
    resolve_program,
    trail_view,
    unit_learners,
    unit_summary,
)
from projections.competency.report_query import unit_report
from projections.competency.reports import BY, PARTS, to_csv, to_xlsx, with_identifiers
from projections.competency.series import CLOCKS, INTERVALS, unit_series
from projections.competency.standing import STATUSES
from projections.competency.unit_views import unit_tree
from projections.contract import Projection
from projections.supervisor import Freshness, ObservedProjection, Supervisor, observed_freshness
from projections.units import reads as unit_reads
from projections.units import store as units
from projections.units.display import DisplayIds, Shown, learner_view_keys, shown_learner_view
from projections.units.roster import RosterError, parse_csv, parse_json, parse_learner

log = structlog.get_logger("lrs.projections")

CATALOG = web.AppKey("competency_catalog", Catalog)
FRAMEWORKS_PROBLEM = web.AppKey("competency_frameworks_problem", str)
SUPERVISOR = web.AppKey("competency_supervisor", Supervisor)
OBSERVED = web.AppKey("competency_observed", ObservedProjection)
# The competency projection for a catalog, as the composition root builds it.
BUILD_PROJECTION: web.AppKey[Callable[[Catalog], Projection]] = web.AppKey("competency_build_projection")
# Pseudonym keys -> identifiers to show (docs/privacy.md), from the composition root.
DISPLAY_IDS = web.AppKey("competency_display_ids", DisplayIds)
READ_SCOPE = "all/read"
ADMIN_SCOPE = "all"
POSITION_HEADER = "X-LRS-Position"
PREFIX = "/competency"
_ENCODER = msgspec.json.Encoder()

__all__ = ["register", "competency_app", "CATALOG"]


def register(app: web.Application, build_projection: Callable[[Catalog], Projection]) -> None:
    """Mount /competency on the service (a sub-application of its own), and
    run the projection with it: the catalogue, the projection's status (for
    /ready and /metrics) and the runner are the service's, so the console and
    /ready read them too, and the runner stops before the pool it writes
    with closes (a sub-application's cleanup would run after the service's).
    ``build_projection``: the projection for a catalog, from the composition
    root (lrs.service.competency_projection)."""
    try:
        app[CATALOG] = load_live_catalog(app[keys.SETTINGS].installed_frameworks_dir)
    except FrameworkError as exc:
        # xAPI ingest goes on; /competency answers 503 and the projection
        # waits until the documents are fixed and the service restarted.
        app[FRAMEWORKS_PROBLEM] = str(exc)
        log.error("competency.frameworks_invalid", error=str(exc), alert=True)
    app[BUILD_PROJECTION] = build_projection
    app.cleanup_ctx.append(_projection_runner)  # last: it needs the pool, the writer and the relay
    app[keys.PROJECTIONS_STATUS] = projections_status
    app.add_subapp(PREFIX, competency_app())


def competency_app() -> web.Application:
    """The /competency/... routes; handlers read the service's keys through
    ``request.config_dict``."""
    competency = web.Application()
    competency.router.add_get("/learners/{learner}", get_learner)
    competency.router.add_get("/learners/{learner}/trail", get_trail)
    competency.router.add_get("/units", get_unit_tree)
    competency.router.add_get("/units/{unit}/summary", get_unit_summary)
    competency.router.add_get("/units/{unit}/learners", get_unit_learners)
    competency.router.add_get("/units/{unit}/report", get_unit_report)
    competency.router.add_get("/units/{unit}/series", get_unit_series)
    competency.router.add_get("/mastery-mismatches", get_mastery_mismatches)
    competency.router.add_post("/admin/roster", post_roster)
    competency.router.add_get("/admin/units", get_units)
    competency.router.add_post("/admin/identities", post_identities)
    competency.router.add_get("/admin/memberships", get_memberships)
    return competency


# -- helpers -------------------------------------------------------------------


def _tenant(request: web.Request, scope: str) -> str:
    credential = request[CREDENTIAL]
    if not credential.allows(scope):
        raise XapiError(403, f"credential {credential.key!r} lacks the {scope!r} scope")
    return credential.tenant


def _answer(payload: dict[str, Any], status: int = 200) -> web.Response:
    response = web.Response(status=status, body=_ENCODER.encode(payload), content_type="application/json")
    if "position" in payload:
        response.headers[POSITION_HEADER] = str(payload["position"])
    if "freshness" in payload:
        response.headers[FRESHNESS_HEADER] = payload["freshness"]["state"]
    return response


def _only(request: web.Request, allowed: set[str]) -> None:
    unknown = sorted(set(request.query) - allowed)
    if unknown:
        raise XapiError(400, f"unknown query parameter(s): {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")


def _flag(request: web.Request, name: str, default: bool) -> bool:
    raw = request.query.get(name)
    if raw is None:
        return default
    if raw.lower() in {"true", "1"}:
        return True
    if raw.lower() in {"false", "0"}:
        return False
    raise XapiError(400, f"{name} must be true or false, got {raw!r}", name)


def _moment(request: web.Request, name: str) -> datetime | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    try:
        parsed = datetime.fromisoformat(raw.replace("z", "Z"))
    except ValueError:
        raise XapiError(400, f"{name} must be an ISO 8601 date-time, got {raw!r}", name) from None
    try:
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)
    except OverflowError:
        raise XapiError(400, f"{name} {raw!r} is outside the years 1-9999 in UTC", name) from None


STALE_PARAMETER = "stale"  # stale=ok: the last answer even when the projection is not current
FRESHNESS_HEADER = "X-LRS-Freshness"


def _catalog(request: web.Request) -> Catalog:
    catalog = request.config_dict.get(CATALOG)
    if catalog is None:
        raise XapiError(503, f"the competency frameworks cannot be read: {request.config_dict[FRAMEWORKS_PROBLEM]}")
    return catalog


async def _serving(request: web.Request) -> tuple[Catalog, Freshness]:
    """The catalog to answer with, and how fresh the answer is (from this
    service's supervisor, or from the log and the checkpoint when the
    projection runs in another process).  Refuses with 503 and the reason
    when the projection is not current and the request did not ask for
    ``stale=ok``."""
    catalog = _catalog(request)
    raw = request.query.get(STALE_PARAMETER)
    if raw not in (None, "ok"):
        raise XapiError(400, f"stale must be ok (the last answer even when not current), got {raw!r}", STALE_PARAMETER)
    watcher = request.config_dict.get(SUPERVISOR) or request.config_dict.get(OBSERVED)
    if watcher is None:  # not started (yet): what the log shows
        settings = request.config_dict[keys.SETTINGS]
        fresh = await observed_freshness(request.config_dict[keys.POOL], catalog, settings.competency_stale_after_s)
    else:
        fresh = await watcher.freshness()
    if not fresh.serve and raw != "ok":
        error = XapiError(503, f"the competency projection is {fresh.state}: {fresh.reason}; ask again later, or add "
                          f"stale=ok for the last answer (position {fresh.position} of {fresh.log_head})")
        raise error
    return fresh.catalog or (watcher.catalog if watcher is not None else catalog), fresh


def _marked(payload: dict[str, Any], fresh: Freshness | None) -> dict[str, Any]:
    """An answer that is not current says so, with its position and age."""
    if fresh is not None and fresh.state != "current":
        payload["freshness"] = fresh.json()
    return payload


async def _query(coro: Any) -> Any:
    try:
        return await coro
    except QueryError as exc:
        raise XapiError(exc.status, exc.message, exc.parameter) from None


# -- query API -------------------------------------------------------------------


def _stored_learner(request: web.Request, tenant: str, learner: str) -> str:
    return stored_learner(request.config_dict.get(keys.LEARNER_KEYS), tenant, learner)


def stored_learner(learner_keys: Any, tenant: str, learner: str) -> str:
    """The key the projection knows ``learner`` by: with personal data
    sealed (docs/privacy.md) the identifier's pseudonym, which the path may
    also give directly (an erased learner's statements show it)."""
    if learner_keys is None or learner.startswith("account:https://lrs.invalid/"):
        return learner.replace("account:https://lrs.invalid/erased|", "account:https://lrs.invalid/pseudonym|", 1)
    return learner_keys.pseudonym_key(tenant, learner)


async def shown_learners(config: Any, pool: Any, tenant: str, learners: Any) -> dict[str, Shown]:
    """The identifiers to show for ``learners`` (projection keys), one batch."""
    display = config.get(DISPLAY_IDS) or DisplayIds()
    return await display.shown(pool, config.get(keys.LEARNER_KEYS), tenant, learners)


async def shown_view(config: Any, pool: Any, tenant: str, view: dict[str, Any], asked: str, stored: str) -> dict[str, Any]:
    """A learner or trail view for ``asked`` (read by its key ``stored``)
    with every learner it names shown (display.shown_learner_view)."""
    shown = await shown_learners(config, pool, tenant, learner_view_keys(view, stored))
    return shown_learner_view(view, asked, stored, shown)


async def get_learner(request: web.Request) -> web.Response:
    tenant = _tenant(request, READ_SCOPE)
    _only(request, {STALE_PARAMETER})
    learner = _stored_learner(request, tenant, request.match_info["learner"])
    catalog, fresh = await _serving(request)
    view = await _query(learner_view(request.config_dict[keys.POOL], catalog, tenant, learner))
    if view is None:
        raise NotFoundError(f"no competency evidence for learner {request.match_info['learner']!r}")
    return _answer(_marked(await _shown_view(request, tenant, view, learner), fresh))


async def get_trail(request: web.Request) -> web.Response:
    tenant = _tenant(request, READ_SCOPE)
    _only(request, {"competency", STALE_PARAMETER})
    competency = request.query.get("competency")
    if not competency:
        raise XapiError(400, "the competency parameter (a competence IRI) is required", "competency")
    learner = _stored_learner(request, tenant, request.match_info["learner"])
    catalog, fresh = await _serving(request)
    view = await _query(trail_view(request.config_dict[keys.POOL], catalog, tenant, learner, competency))
    if view is None:
        raise NotFoundError(f"no competency evidence for learner {request.match_info['learner']!r}")
    return _answer(_marked(await _shown_view(request, tenant, view, learner), fresh))


async def _shown_view(request: web.Request, tenant: str, view: dict[str, Any], stored: str) -> dict[str, Any]:
    return await shown_view(request.config_dict, request.config_dict[keys.POOL], tenant, view, request.match_info["learner"], stored)


async def get_unit_summary(request: web.Request) -> web.Response:
    tenant = _tenant(request, READ_SCOPE)
    _only(request, {"program", "version", "descendants", "as_of", "clock", STALE_PARAMETER})
    catalog, fresh = await _serving(request)
    program = _program(request, catalog)
    clock = _choice(request, "clock", CLOCKS, "achieved")
    summary = await _query(
        unit_summary(
            request.config_dict[keys.POOL],
            catalog,
            tenant,
            request.match_info["unit"],
            program=program,
            descendants=_flag(request, "descendants", True),
            as_of=_moment(request, "as_of"),
            clock=clock,
        )
    )
    return _answer(_marked(summary, fresh))


async def get_unit_series(request: web.Request) -> web.Response:
    tenant = _tenant(request, READ_SCOPE)
    _only(request, {"program", "version", "descendants", "from", "to", "interval", "clock", STALE_PARAMETER})
    catalog, fresh = await _serving(request)
    program = _program(request, catalog)
    first, last = _date(request, "from"), _date(request, "to")
    answer = await _query(
        unit_series(
            request.config_dict[keys.POOL], tenant, request.match_info["unit"], program=program,
            descendants=_flag(request, "descendants", True), first=first, last=last,
            interval=_choice(request, "interval", INTERVALS, "month"), clock=_choice(request, "clock", CLOCKS, "achieved"),
        )
    )
    return _answer(_marked(answer, fresh))


def _date(request: web.Request, name: str) -> date:
    raw = request.query.get(name)
    if raw is None:
        raise XapiError(400, f"the {name} parameter (an ISO date, YYYY-MM-DD) is required", name)
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise XapiError(400, f"{name} must be an ISO date (YYYY-MM-DD), got {raw!r}", name) from None


# status= values: each status, and not-certified for both that are not
# certified; hyphens or underscores.
STATUS_FILTERS: dict[str, tuple[str, ...]] = {
    **{status: (status,) for status in STATUSES},
    "not_certified": ("in_progress", "not_started"),
}


def _statuses(request: web.Request) -> tuple[str, ...]:
    raw = request.query.get("status")
    if raw is None:
        return STATUSES
    chosen: list[str] = []
    for part in raw.split(","):
        found = STATUS_FILTERS.get(part.strip().replace("-", "_"))
        if found is None:
            allowed = ", ".join(name.replace("_", "-") for name in STATUS_FILTERS)
            raise XapiError(400, f"status must be one or more (comma-separated) of {allowed}; got {part!r}", "status")
        chosen.extend(s for s in found if s not in chosen)
    return tuple(s for s in STATUSES if s in chosen)


def _limit(request: web.Request, default: int, most: int) -> int:
    raw = request.query.get("limit", str(default))
    try:
        limit = int(raw)
    except ValueError:
        raise XapiError(400, f"limit must be an integer, got {raw!r}", "limit") from None
    if not 1 <= limit <= most:
        raise XapiError(400, f"limit must be between 1 and {most}", "limit")
    return limit


def _program(request: web.Request, catalog: Catalog) -> Any:
    try:
        return resolve_program(catalog, request.query.get("program"), request.query.get("version"))
    except QueryError as exc:
        raise XapiError(exc.status, exc.message, exc.parameter) from None


async def get_unit_tree(request: web.Request) -> web.Response:
    """Every unit as a tree, each with its counts (descendants included) for one programme."""
    tenant = _tenant(request, READ_SCOPE)
    _only(request, {"program", "version"})
    program = _program(request, _catalog(request))
    return _answer(await _query(unit_tree(request.config_dict[keys.POOL], tenant, program=program)))


async def get_unit_learners(request: web.Request) -> web.Response:
    tenant = _tenant(request, READ_SCOPE)
    _only(request, {"program", "version", "descendants", "status", "after", "limit", STALE_PARAMETER})
    catalog, fresh = await _serving(request)
    program = _program(request, catalog)
    answer = await _query(
        unit_learners(
            request.config_dict[keys.POOL], catalog, tenant, request.match_info["unit"], program=program,
            descendants=_flag(request, "descendants", True), statuses=_statuses(request),
            after=request.query.get("after", ""), limit=_limit(request, 100, 1000),
        )
    )
    return _answer(_marked(await shown_unit_learners(request.config_dict, request.config_dict[keys.POOL], tenant, answer), fresh))


async def shown_unit_learners(config: Any, pool: Any, tenant: str, answer: dict[str, Any]) -> dict[str, Any]:
    """``answer`` (queries.unit_learners) with each learner's identifier to
    show in ``learner`` and its projection key in ``key`` (``next_after``
    stays a key: pages go on in key order)."""
    shown = await shown_learners(config, pool, tenant, [row["learner"] for row in answer["learners"]])
    answer["learners"] = [{**row, **shown[row["learner"]].json()} for row in answer["learners"]]
    return answer


XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
REPORT_FORMATS = ("csv", "xlsx")


def _choice(request: web.Request, name: str, allowed: tuple[str, ...], default: str) -> str:
    value = request.query.get(name, default)
    if value not in allowed:
        raise XapiError(400, f"{name} must be one of {', '.join(allowed)}, got {value!r}", name)
    return value


async def get_unit_report(request: web.Request) -> web.Response:
    """The per-agency or per-unit report as CSV (one part) or XLSX (both parts)."""
    tenant = _tenant(request, READ_SCOPE)
    _only(request, {"program", "version", "by", "format", "part", STALE_PARAMETER})
    catalog, fresh = await _serving(request)
    program = _program(request, catalog)
    by = _choice(request, "by", BY, "agency")
    fmt = _choice(request, "format", REPORT_FORMATS, "csv")
    part = _choice(request, "part", PARTS, "summary")
    if fmt == "xlsx" and "part" in request.query:
        raise XapiError(400, "part applies to format=csv only (an XLSX report holds both parts)", "part")
    unit_id = request.match_info["unit"]
    report = await _query(unit_report(request.config_dict[keys.POOL], catalog, tenant, unit_id, program=program, by=by))  # type: ignore[arg-type]
    report = await shown_report(request.config_dict, request.config_dict[keys.POOL], tenant, report)
    return report_response(report, unit_id, by, fmt, part, fresh)


async def shown_report(config: Any, pool: Any, tenant: str, report: Any) -> Any:
    """``report`` with the not-certified learners shown by identifier."""
    return with_identifiers(report, await shown_learners(config, pool, tenant, [r.learner for r in report.not_certified]))


def report_response(
    report: Any, unit_id: str, by: str, fmt: str, part: str, fresh: Freshness | None = None
) -> web.Response:
    """A unit report as a download: CSV (one part) or XLSX (both parts); the console sends the same."""
    name = f"{unit_id}-{by}-report" + ("" if fmt == "xlsx" else f"-{part}")
    if fmt == "xlsx":
        response = web.Response(body=to_xlsx(report), content_type=XLSX)
    else:
        response = web.Response(text=to_csv(report, part), content_type="text/csv", charset="utf-8")
    response.headers["Content-Disposition"] = f'attachment; filename="{name}.{fmt}"'
    response.headers[POSITION_HEADER] = str(report.position)
    if fresh is not None and fresh.state != "current":
        response.headers[FRESHNESS_HEADER] = fresh.state
    return response


async def get_mastery_mismatches(request: web.Request) -> web.Response:
    tenant = _tenant(request, READ_SCOPE)
    _only(request, {STALE_PARAMETER})
    _, fresh = await _serving(request)
    return _answer(_marked(await _query(mastery_mismatches(request.config_dict[keys.POOL], tenant)), fresh))


# -- admin -----------------------------------------------------------------------


async def post_roster(request: web.Request) -> web.Response:
    """Body: a roster JSON document, or CSV (Content-Type text/csv) of units or memberships."""
    tenant = _tenant(request, ADMIN_SCOPE)
    _only(request, set())
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
        return _answer({"error": "invalid roster", "status": 400, "problems": exc.problems}, status=400)
    except UnicodeDecodeError:
        raise XapiError(400, "the CSV body is not UTF-8") from None
    return _answer({
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
    tenant = _tenant(request, ADMIN_SCOPE)
    _only(request, set())
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
    return _answer({
        "op": op, "person": person, "changed": [clear.get(i, i) for i in change.identifiers],
        "identifiers": [person, *(clear.get(i, i) for i in linked)],
        **({} if change.position is None else {"position": change.position}),
    })


async def get_units(request: web.Request) -> web.Response:
    tenant = _tenant(request, ADMIN_SCOPE)
    _only(request, set())
    found = await unit_reads.fetch_units(request.config_dict[keys.POOL], tenant)
    return _answer({
        "units": [
            {"id": u.unit_id, "parent": u.parent_id, "kind": u.kind, "name": u.name} for u in found.values()
        ]
    })


async def get_memberships(request: web.Request) -> web.Response:
    """Memberships by (learner, valid_from, recorded position); ``after_learner``
    + ``after_from`` + ``after_recorded`` page on; ``history=true`` also lists
    the superseded ones, with the roster events that recorded and superseded them."""
    tenant = _tenant(request, ADMIN_SCOPE)
    _only(request, {"unit", "learner", "limit", "after_learner", "after_from", "after_recorded", "history"})
    limit = _limit(request, 1000, 10_000)
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
            _moment(request, "after_from") or datetime.min.replace(tzinfo=timezone.utc),
            recorded,
        )
    rows = await unit_reads.list_memberships(
        request.config_dict[keys.POOL], tenant, unit_id=request.query.get("unit"),
        learner=None if "learner" not in request.query else _stored_learner(request, tenant, request.query["learner"]),
        after=after, limit=limit, history=_flag(request, "history", False),
    )
    # Sealed (docs/privacy.md): each learner's clear key as the roster gave it, null once erased.
    learner_keys = request.config_dict.get(keys.LEARNER_KEYS)
    shown: dict[str, str | None] = {}
    if learner_keys is not None:
        sealed = await unit_reads.sealed_learners(request.config_dict[keys.POOL], rows)
        shown = await open_refs(learner_keys, tenant, sealed) if sealed else {}
    return _answer({
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


# -- /ready and /metrics ---------------------------------------------------------------


async def projections_status(app: web.Application) -> dict[str, Any]:
    """The competency projection's state, lag and parked count (also set as
    the lrs_projection_* gauges)."""
    from lrs import metrics
    from projections.runner import parked_count

    watcher = app.get(SUPERVISOR) or app.get(OBSERVED)
    pool = app[keys.POOL]
    if watcher is not None:
        fresh = await watcher.freshness()
    elif CATALOG in app:
        fresh = await observed_freshness(pool, app[CATALOG], app[keys.SETTINGS].competency_stale_after_s)
    else:
        fresh = None
    parked = await parked_count(pool, "competency")
    state = "stopped" if fresh is None else fresh.state
    for known in metrics.PROJECTION_STATES:
        metrics.PROJECTION_STATE.labels("competency", known).set(1 if known == state else 0)
    status: dict[str, Any] = {"state": state, "parked": parked}
    if fresh is not None:
        status.update(
            reason=fresh.reason, position=fresh.position, log_head=fresh.log_head,
            lag_events=max(fresh.log_head - fresh.position, 0), lag_s=round(fresh.age_s, 1),
        )
        metrics.PROJECTION_LAG_EVENTS.labels("competency").set(status["lag_events"])
        metrics.PROJECTION_LAG_SECONDS.labels("competency").set(fresh.age_s)
    else:
        status["reason"] = f"the competency frameworks cannot be read: {app.get(FRAMEWORKS_PROBLEM)}"
    metrics.PROJECTION_PARKED.labels("competency").set(parked)
    return {"competency": status}


# -- the runner inside `lrs serve` ---------------------------------------------------


async def _projection_runner(app: web.Application) -> AsyncIterator[None]:
    """Runs the competency projection while the service runs (supervisor.py):
    from JetStream when a NATS URL is configured, else straight from the
    Postgres log."""
    settings = app[keys.SETTINGS]
    if not settings.projections_enabled:
        log.info("projections disabled", reason="LRS_PROJECTIONS_ENABLED=false")
        if CATALOG in app:  # run elsewhere: watched through the log and the checkpoint
            app[OBSERVED] = ObservedProjection(
                app[keys.POOL], app[CATALOG], frameworks_dir=settings.installed_frameworks_dir,
                stale_after_s=settings.competency_stale_after_s, poll_s=settings.frameworks_poll_s,
            )
        yield
        return
    if CATALOG not in app:
        log.error("projection.not_started", reason="the competency frameworks cannot be read", alert=True)
        yield
        return
    nats_url = app.get(keys.NATS_URL)
    wake = asyncio.Event()
    if nats_url is None:
        app[keys.WRITER].committed.append(lambda position: wake.set())
    supervisor = Supervisor(
        app[keys.POOL], app[CATALOG], frameworks_dir=settings.installed_frameworks_dir, nats_url=nats_url, wake=wake,
        stale_after_s=settings.competency_stale_after_s, poll_s=settings.frameworks_poll_s,
        auto_rebuild=settings.competency_auto_rebuild, build_projection=app[BUILD_PROJECTION],
    )
    supervisor.start()
    app[SUPERVISOR] = supervisor
    try:
        yield
    finally:
        await supervisor.close()
