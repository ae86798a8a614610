"""The /competency query API's handlers (a learner, a trail, a unit's
summary, series, learners and report, the unit tree, mastery mismatches)
and what the console shares with them (the shown views, the report as a
download)."""

from __future__ import annotations

from datetime import date
from typing import Any

from aiohttp import web

from lrs.http import keys
from lrs.xapi.errors import NotFoundError, XapiError
from projections.competency.catalog import Catalog
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
from projections.competency.reports import BY, LANGUAGES, PARTS, to_csv, to_xlsx, with_identifiers
from projections.competency.series import CLOCKS, INTERVALS, unit_series
from projections.competency.standing import STATUSES
from projections.competency.unit_views import unit_tree
from projections.freshness_reasons import Reason
from projections.http_requests import (
    CATALOG, FRAMEWORKS_PROBLEM, FRESHNESS_HEADER, OBSERVED, POSITION_HEADER, READ_SCOPE, SUPERVISOR, flag_parameter,
    json_answer, limit_parameter, moment_parameter, only_parameters, shown_learners, stored_learner_in, tenant_of,
)
from projections.supervisor import Freshness, observed_freshness, until_rebuilt
from projections.units.display import learner_view_keys, shown_learner_view

__all__ = [
    "REPORT_FORMATS",
    "STALE_PARAMETER",
    "get_learner",
    "get_mastery_mismatches",
    "get_trail",
    "get_unit_learners",
    "get_unit_report",
    "get_unit_series",
    "get_unit_summary",
    "get_unit_tree",
    "report_response",
    "shown_report",
    "shown_unit_learners",
    "shown_view",
]

STALE_PARAMETER = "stale"  # stale=ok: the last answer even when the projection is not current


def _catalog(request: web.Request) -> Catalog:
    catalog = request.config_dict.get(CATALOG)
    if catalog is None:
        raise XapiError(503, Reason.of("frameworks_unreadable", error=request.config_dict[FRAMEWORKS_PROBLEM]).text)
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


async def _query(coro: Any, fresh: Freshness | None = None) -> Any:
    """The query's answer; its error as the API's, saying (from ``fresh``,
    the freshness it was asked at) what is being done about a refusal until
    the projection is rebuilt."""
    try:
        return await coro
    except QueryError as exc:
        raise XapiError(exc.status, exc.told(until_rebuilt(fresh)), exc.parameter) from None


async def shown_view(config: Any, pool: Any, tenant: str, view: dict[str, Any], asked: str, stored: str) -> dict[str, Any]:
    """A learner or trail view for ``asked`` (read by its key ``stored``)
    with every learner it names shown (display.shown_learner_view)."""
    shown = await shown_learners(config, pool, tenant, learner_view_keys(view, stored))
    return shown_learner_view(view, asked, stored, shown)


async def get_learner(request: web.Request) -> web.Response:
    tenant = tenant_of(request, READ_SCOPE)
    only_parameters(request, {STALE_PARAMETER})
    learner = stored_learner_in(request, tenant, request.match_info["learner"])
    catalog, fresh = await _serving(request)
    view = await _query(learner_view(request.config_dict[keys.POOL], catalog, tenant, learner), fresh)
    if view is None:
        raise NotFoundError(f"no competency evidence for learner {request.match_info['learner']!r}")
    return json_answer(_marked(await _shown_view(request, tenant, view, learner), fresh))


async def get_trail(request: web.Request) -> web.Response:
    tenant = tenant_of(request, READ_SCOPE)
    only_parameters(request, {"competency", STALE_PARAMETER})
    competency = request.query.get("competency")
    if not competency:
        raise XapiError(400, "the competency parameter (a competence IRI) is required", "competency")
    learner = stored_learner_in(request, tenant, request.match_info["learner"])
    catalog, fresh = await _serving(request)
    view = await _query(trail_view(request.config_dict[keys.POOL], catalog, tenant, learner, competency), fresh)
    if view is None:
        raise NotFoundError(f"no competency evidence for learner {request.match_info['learner']!r}")
    return json_answer(_marked(await _shown_view(request, tenant, view, learner), fresh))


async def _shown_view(request: web.Request, tenant: str, view: dict[str, Any], stored: str) -> dict[str, Any]:
    return await shown_view(request.config_dict, request.config_dict[keys.POOL], tenant, view, request.match_info["learner"], stored)


async def get_unit_summary(request: web.Request) -> web.Response:
    tenant = tenant_of(request, READ_SCOPE)
    only_parameters(request, {"program", "version", "descendants", "as_of", "clock", STALE_PARAMETER})
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
            descendants=flag_parameter(request, "descendants", True),
            as_of=moment_parameter(request, "as_of"),
            clock=clock,
        )
    )
    return json_answer(_marked(summary, fresh))


async def get_unit_series(request: web.Request) -> web.Response:
    tenant = tenant_of(request, READ_SCOPE)
    only_parameters(request, {"program", "version", "descendants", "from", "to", "interval", "clock", STALE_PARAMETER})
    catalog, fresh = await _serving(request)
    program = _program(request, catalog)
    first, last = _date(request, "from"), _date(request, "to")
    answer = await _query(
        unit_series(
            request.config_dict[keys.POOL], tenant, request.match_info["unit"], program=program,
            descendants=flag_parameter(request, "descendants", True), first=first, last=last,
            interval=_choice(request, "interval", INTERVALS, "month"), clock=_choice(request, "clock", CLOCKS, "achieved"),
        )
    )
    return json_answer(_marked(answer, fresh))


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


def _program(request: web.Request, catalog: Catalog) -> Any:
    try:
        return resolve_program(catalog, request.query.get("program"), request.query.get("version"))
    except QueryError as exc:
        raise XapiError(exc.status, exc.message, exc.parameter) from None


async def get_unit_tree(request: web.Request) -> web.Response:
    """Every unit as a tree, each with its counts (descendants included) for one programme."""
    tenant = tenant_of(request, READ_SCOPE)
    only_parameters(request, {"program", "version"})
    program = _program(request, _catalog(request))
    return json_answer(await _query(unit_tree(request.config_dict[keys.POOL], tenant, program=program)))


async def get_unit_learners(request: web.Request) -> web.Response:
    tenant = tenant_of(request, READ_SCOPE)
    only_parameters(request, {"program", "version", "descendants", "status", "after", "limit", STALE_PARAMETER})
    catalog, fresh = await _serving(request)
    program = _program(request, catalog)
    answer = await _query(
        unit_learners(
            request.config_dict[keys.POOL], catalog, tenant, request.match_info["unit"], program=program,
            descendants=flag_parameter(request, "descendants", True), statuses=_statuses(request),
            after=request.query.get("after", ""), limit=limit_parameter(request, 100, 1000),
        ),
        fresh,
    )
    return json_answer(_marked(await shown_unit_learners(request.config_dict, request.config_dict[keys.POOL], tenant, answer), fresh))


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
    tenant = tenant_of(request, READ_SCOPE)
    only_parameters(request, {"program", "version", "by", "format", "part", "language", STALE_PARAMETER})
    language = _choice(request, "language", LANGUAGES, "en")
    catalog, fresh = await _serving(request)
    program = _program(request, catalog)
    by = _choice(request, "by", BY, "agency")
    fmt = _choice(request, "format", REPORT_FORMATS, "csv")
    part = _choice(request, "part", PARTS, "summary")
    if fmt == "xlsx" and "part" in request.query:
        raise XapiError(400, "part applies to format=csv only (an XLSX report holds both parts)", "part")
    unit_id = request.match_info["unit"]
    report = await _query(unit_report(request.config_dict[keys.POOL], catalog, tenant, unit_id, program=program, by=by), fresh)  # type: ignore[arg-type]
    report = await shown_report(request.config_dict, request.config_dict[keys.POOL], tenant, report)
    return report_response(report, unit_id, by, fmt, part, fresh, language)


async def shown_report(config: Any, pool: Any, tenant: str, report: Any) -> Any:
    """``report`` with the not-certified learners shown by identifier."""
    return with_identifiers(report, await shown_learners(config, pool, tenant, [r.learner for r in report.not_certified]))


def report_response(
    report: Any, unit_id: str, by: str, fmt: str, part: str, fresh: Freshness | None = None, language: str = "en"
) -> web.Response:
    """A unit report as a download: CSV (one part) or XLSX (both parts), in
    ``language`` (reports.LANGUAGES); the console sends the same."""
    name = f"{unit_id}-{by}-report" + ("" if fmt == "xlsx" else f"-{part}")
    if fmt == "xlsx":
        response = web.Response(body=to_xlsx(report, language), content_type=XLSX)
    else:
        response = web.Response(text=to_csv(report, part, language), content_type="text/csv", charset="utf-8")
    response.headers["Content-Disposition"] = f'attachment; filename="{name}.{fmt}"'
    response.headers[POSITION_HEADER] = str(report.position)
    if fresh is not None and fresh.state != "current":
        response.headers[FRESHNESS_HEADER] = fresh.state
    return response


async def get_mastery_mismatches(request: web.Request) -> web.Response:
    tenant = tenant_of(request, READ_SCOPE)
    only_parameters(request, {STALE_PARAMETER})
    _, fresh = await _serving(request)
    return json_answer(_marked(await _query(mastery_mismatches(request.config_dict[keys.POOL], tenant)), fresh))
