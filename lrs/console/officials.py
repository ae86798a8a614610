"""Officials' pages: the unit tree, a unit with its chart and learners, a
learner's competency state and evidence, and the unit report (CSV or XLSX,
in the page's language).

Every number comes from the competency projection through the port the
console declares (:class:`lrs.console.ports.CompetencyPages`): the functions
behind ``/competency/...``, so the console shows what the API answers.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote, urlencode

from aiohttp import web
from markupsafe import Markup

from lrs.console import guard
from lrs.console.charts import Point, rate_chart
from lrs.console.competences import competence_name
from lrs.console.i18n import local_text, translator
from lrs.console.learner_order import PAGE_SIZE, SORTED_UP_TO, page_of
from lrs.console.render import error_page, render, render_message
from lrs.http import keys
from lrs.http.middleware import CREDENTIAL
from lrs.console.ports import CompetencyPages, Unavailable

# The projection's catalogue and programmes, as the port hands them over
# (projections.competency.catalog.Catalog, projections.competency.frameworks.Program).
Catalog = Any
Program = Any

CHART_MONTHS = 5  # the chart shows this many months before the current one


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/units", units_page, name="units")
    router.add_get("/units/{unit}", unit_page, name="unit")
    router.add_get("/units/{unit}/report", unit_report, name="unit_report")
    router.add_get("/learners/{learner}", learner_page, name="learner")
    router.add_get("/learners/{learner}/trail", trail_page, name="trail")


def learner_url(learner: str) -> str:
    return "/console/learners/" + quote(learner, safe="")


def program_key(program: Program) -> str:
    return f"{program.iri}|{program.version}"


def _competency(request: web.Request) -> CompetencyPages:
    found = request.config_dict.get(keys.CONSOLE_COMPETENCY)
    if found is None:
        raise Unavailable(503, "no competency projection is installed")
    return found


async def _catalog(request: web.Request) -> Catalog:
    """The catalog the API answers with now.  Where the API would refuse a
    stale answer, the page shows it with a notice of how far behind it is."""
    catalog, fresh = await _competency(request).catalog(request.config_dict)
    if fresh is not None:
        request[guard.FRESHNESS] = fresh
    return catalog


def _program(request: web.Request, catalog: Catalog) -> Program | None:
    wanted = request.query.get("program")
    for program in catalog.programs:
        if program_key(program) == wanted:
            return program
    return catalog.programs[0] if catalog.programs else None


def _message(request: web.Request, status: int, text: str) -> web.Response:
    return error_page(request, status, text)


def _pages(handler):  # type: ignore[no-untyped-def]
    """The queries' errors and an unreadable catalog become an error page with their message."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except Unavailable as exc:
            return _message(request, exc.status, exc.message)
        except Exception as exc:
            if isinstance(exc, _competency(request).query_errors):
                return _message(request, exc.status, exc.message)  # type: ignore[attr-defined]
            raise

    wrapped.__name__ = handler.__name__
    return wrapped


def _context(request: web.Request, catalog: Catalog, program: Program | None, **extra: Any) -> dict[str, Any]:
    language = request[guard.LANGUAGE]
    return {
        "programs": [(program_key(p), local_text(p.title, language), p.version) for p in catalog.programs],
        "program": program,
        "program_key": program_key(program) if program else "",
        "program_q": urlencode({"program": program_key(program)}) if program else "",
        "learner_url": learner_url,
        "code": lambda iri: competence_name(catalog, iri, language),
        **extra,
    }


@_pages
async def units_page(request: web.Request) -> web.StreamResponse:
    catalog = await _catalog(request)
    program = _program(request, catalog)
    tree = None
    if program is not None:
        tree = await _competency(request).unit_tree(request.config_dict[keys.POOL], request[CREDENTIAL].tenant, program=program)
    rows = list(_depth_first(tree["units"])) if tree else []
    return render("units.html", request, _context(request, catalog, program, tree=tree, rows=rows))


def _depth_first(nodes: list[dict[str, Any]], depth: int = 0) -> Any:
    """(node, depth) in display order: each unit followed by the units below it."""
    for node in nodes:
        yield node, depth
        yield from _depth_first(node["children"], depth + 1)


@_pages
async def unit_page(request: web.Request) -> web.StreamResponse:
    catalog = await _catalog(request)
    program = _program(request, catalog)
    if program is None:
        return render_message(request, 404, key="no_programs")
    pool = request.config_dict[keys.POOL]
    tenant = request[CREDENTIAL].tenant
    unit_id = request.match_info["unit"]
    competency = _competency(request)
    summary = await competency.unit_summary(pool, catalog, tenant, unit_id, program=program, descendants=True)
    after = request.query.get("after", "")
    sorted_here = not after and summary["headcount"] <= SORTED_UP_TO  # else in key order (learner_order.py)
    learners = await competency.unit_learners(
        pool, catalog, tenant, unit_id, program=program, descendants=True,
        after=after, limit=SORTED_UP_TO if sorted_here else PAGE_SIZE, config=request.config_dict,
    )
    if sorted_here and learners["next_after"] is None:
        learners = page_of(learners, _start(request.query.get("from", "0")))
    elif sorted_here:  # more learners came in since the summary: the first page in key order
        learners["learners"] = learners["learners"][:PAGE_SIZE]
        learners["next_after"] = learners["learners"][-1]["key"]
    tree = await competency.unit_tree(pool, tenant, program=program)
    children = _find(tree["units"], unit_id)
    chart = await _chart(request, program, unit_id)
    return render(
        "unit.html", request,
        _context(
            request, catalog, program, summary=summary, learners=learners,
            children=children["children"] if children else [], chart=chart,
        ),
    )


def _start(raw: str) -> int:
    """The ``from`` offset the page's own links carry; anything else (a Unicode
    digit ``int`` refuses, a number past its digit limit) is the first page."""
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 9 else 0


def _find(nodes: list[dict[str, Any]], unit_id: str) -> dict[str, Any] | None:
    for node in nodes:
        if node["id"] == unit_id:
            return node
        found = _find(node["children"], unit_id)
        if found is not None:
            return found
    return None


async def _chart(request: web.Request, program: Program, unit_id: str) -> Markup:
    """The certified share at the end of each of the last six months, on the
    achieved clock, against the target in force at each (``unit_series``, as
    ``GET /competency/units/{unit}/series``)."""
    today = datetime.now(timezone.utc).date()
    first = (today.replace(day=1) - timedelta(days=CHART_MONTHS * 31)).replace(day=1)
    series = await _competency(request).unit_series(
        request.config_dict[keys.POOL], request[CREDENTIAL].tenant, unit_id, program=program, descendants=True,
        first=first, last=today, interval="month", clock="achieved",
    )
    # Each point is the state at the end of its month, drawn at the month's start with its label.
    starts = [datetime.fromisoformat(p["start"].replace("Z", "+00:00")) for p in series["points"]]
    points = [Point(at, p["rate"], p["period"]) for at, p in zip(starts, series["points"])]
    targets = [Point(at, p["target"]["rate"]) for at, p in zip(starts, series["points"]) if p["target"]]
    t = translator(request[guard.LANGUAGE])
    return Markup(rate_chart(points, targets, title=t("over_time"), rate_label=t("rate"), target_label=t("target")))


@_pages
async def unit_report(request: web.Request) -> web.StreamResponse:
    """The unit's report, as ``GET /competency/units/{unit}/report`` sends it:
    per agency or per unit (``by``), CSV (``part``: summary or not-certified) or XLSX,
    in ``language`` (vi or en; the page's language when not named)."""
    catalog = await _catalog(request)
    program = _program(request, catalog)
    if program is None:
        return render_message(request, 404, key="no_programs")
    by = request.query.get("by", "agency")
    fmt = request.query.get("format", "csv")
    part = request.query.get("part", "summary")
    language = request.query.get("language", request[guard.LANGUAGE])  # the page's links name it
    competency = _competency(request)
    choices = (("by", by, competency.report_groupings), ("format", fmt, competency.report_formats),
               ("part", part, competency.report_parts), ("language", language, competency.report_languages))
    for name, value, allowed in choices:
        if value not in allowed:
            return _message(request, 400, f"{name} must be one of {', '.join(allowed)}, got {value!r}")
    unit_id = request.match_info["unit"]
    report = await competency.unit_report(
        request.config_dict[keys.POOL], catalog, request[CREDENTIAL].tenant, unit_id, program=program, by=by,  # type: ignore[arg-type]
        config=request.config_dict,
    )
    return competency.report_response(report, unit_id, by, fmt, part, request.get(guard.FRESHNESS), language)


def _shown(request: web.Request, view: dict[str, Any] | None, learner: str) -> str:
    """The learner as the page names it: the identifier the roster holds, or
    "(erased)" once erased (never the pseudonym key in its place)."""
    if view is not None and view.get("learner"):
        return str(view["learner"])
    if view is not None and view.get("erased"):
        return translator(request[guard.LANGUAGE])("erased")
    return learner


@_pages
async def learner_page(request: web.Request) -> web.StreamResponse:
    catalog = await _catalog(request)
    learner = request.match_info["learner"]
    pool = request.config_dict[keys.POOL]
    tenant = request[CREDENTIAL].tenant
    competency_pages = _competency(request)
    view = await competency_pages.learner_view(pool, catalog, tenant, learner, config=request.config_dict)
    programs = {program_key(p): p for p in catalog.programs}
    evidence: dict[str, list[dict[str, Any]]] = {}  # statement id -> what it was evidence of
    if view is not None:
        wanted = {sid for c in view["certifications"] for sid in c["statement_ids"]}
        for competency in sorted({m for c in view["certifications"] for m in c["met"]}):
            evidence_of = await competency_pages.trail_evidence(
                pool, catalog, tenant, learner, competency, config=request.config_dict
            )
            for item in evidence_of:
                if item["statement_id"] in wanted:
                    evidence.setdefault(item["statement_id"], []).append({**item, "competency": competency})
    return render(
        "learner.html", request,
        {
            "learner": learner, "shown": _shown(request, view, learner), "view": view, "learner_url": learner_url,
            "program_titles": {k: local_text(p.title, request[guard.LANGUAGE]) for k, p in programs.items()},
            "trails": {
                f'{c["program"]}|{c["program_version"]}': sorted(
                    ((sid, evidence.get(sid, [])) for sid in c["statement_ids"]),
                    key=lambda pair: (pair[1][0]["timestamp"] if pair[1] else "", pair[0]),
                )
                for c in (view["certifications"] if view is not None else [])
            },
            "code": lambda iri: competence_name(catalog, iri, request[guard.LANGUAGE]),
        },
        status=200 if view is not None else 404,
    )


@_pages
async def trail_page(request: web.Request) -> web.StreamResponse:
    catalog = await _catalog(request)
    learner = request.match_info["learner"]
    competency = request.query.get("competency") or ""
    view = await _competency(request).trail_view(
        request.config_dict[keys.POOL], catalog, request[CREDENTIAL].tenant, learner, competency, config=request.config_dict
    )
    return render(
        "trail.html", request,
        {"learner": learner, "shown": _shown(request, view, learner), "view": view, "learner_url": learner_url,
         "code": lambda iri: competence_name(catalog, iri, request[guard.LANGUAGE])},
        status=200 if view is not None else 404,
    )
