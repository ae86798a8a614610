"""The competency projection as the console reads it: the implementation of
:class:`lrs.console.ports.ConsoleCompetency`, handed to the console by the
composition root (lrs/service.py).  Every read is the function behind the
matching ``/competency/...`` answer."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Mapping

import asyncpg

from lrs.console.ports import Unavailable
from projections.checkpoints import checkpoint_position, is_parked, parked_events
from projections.competency import queries
from projections.competency.report_query import unit_report
from projections.competency.reports import BY, LANGUAGES, PARTS
from projections.competency.series import unit_series
from projections.competency.unit_views import unit_tree
from lrs.http.keys import LEARNER_KEYS
from projections.http_queries import REPORT_FORMATS, report_response, shown_report, shown_unit_learners, shown_view
from projections.http_requests import CATALOG, FRAMEWORKS_PROBLEM, OBSERVED, SUPERVISOR, stored_learner
from projections.retry_requests import recent_requests, request_retry
from projections.supervisor import Supervisor

__all__ = ["CompetencyConsole"]


class CompetencyConsole:
    """The competency projection's reads and retry requests for the console's pages."""

    name = "competency"
    query_errors: tuple[type[Exception], ...] = (queries.QueryError,)
    report_groupings = BY
    report_parts = PARTS
    report_formats = REPORT_FORMATS
    report_languages = LANGUAGES

    # -- officials' pages ---------------------------------------------------------

    async def catalog(self, config: Mapping[Any, Any]) -> tuple[Any, Any | None]:
        """The catalogue the API answers with now (the supervisor's, as
        ``projections.http_queries._serving`` picks it).  Where the API would refuse a
        stale answer, the page shows it with a notice of how far behind it is."""
        catalog = config.get(CATALOG)
        if catalog is None:
            raise Unavailable(503, config.get(FRAMEWORKS_PROBLEM, "frameworks unavailable"))
        # This service's supervisor, or the observer of a projection running in another process.
        watcher = config.get(SUPERVISOR) or config.get(OBSERVED)
        if watcher is None:
            return catalog, None
        fresh = await watcher.freshness()
        return fresh.catalog or watcher.catalog, (fresh if fresh.state != "current" else None)

    async def unit_tree(self, pool: asyncpg.Pool, tenant: str, *, program: Any) -> dict[str, Any]:
        return await unit_tree(pool, tenant, program=program)

    async def unit_summary(
        self, pool: asyncpg.Pool, catalog: Any, tenant: str, unit_id: str, *, program: Any, descendants: bool
    ) -> dict[str, Any]:
        return await queries.unit_summary(pool, catalog, tenant, unit_id, program=program, descendants=descendants)

    async def unit_learners(
        self, pool: asyncpg.Pool, catalog: Any, tenant: str, unit_id: str, *, program: Any, descendants: bool,
        after: str, limit: int, config: Mapping[Any, Any],
    ) -> dict[str, Any]:
        answer = await queries.unit_learners(
            pool, catalog, tenant, unit_id, program=program, descendants=descendants, after=after, limit=limit
        )
        return await shown_unit_learners(config, pool, tenant, answer)

    async def unit_series(
        self, pool: asyncpg.Pool, tenant: str, unit_id: str, *, program: Any, descendants: bool,
        first: date, last: date, interval: str, clock: str,
    ) -> dict[str, Any]:
        return await unit_series(
            pool, tenant, unit_id, program=program, descendants=descendants,
            first=first, last=last, interval=interval, clock=clock,
        )

    async def unit_report(
        self, pool: asyncpg.Pool, catalog: Any, tenant: str, unit_id: str, *, program: Any, by: str,
        config: Mapping[Any, Any],
    ) -> Any:
        report = await unit_report(pool, catalog, tenant, unit_id, program=program, by=by)  # type: ignore[arg-type]
        return await shown_report(config, pool, tenant, report)

    def report_response(
        self, report: Any, unit_id: str, by: str, fmt: str, part: str, fresh: Any | None, language: str
    ) -> Any:
        return report_response(report, unit_id, by, fmt, part, fresh, language)

    async def learner_view(
        self, pool: asyncpg.Pool, catalog: Any, tenant: str, learner: str, *, config: Mapping[Any, Any]
    ) -> dict[str, Any] | None:
        stored = stored_learner(config.get(LEARNER_KEYS), tenant, learner)
        view = await queries.learner_view(pool, catalog, tenant, stored)
        return None if view is None else await shown_view(config, pool, tenant, view, learner, stored)

    async def trail_view(
        self, pool: asyncpg.Pool, catalog: Any, tenant: str, learner: str, competency: str, *, config: Mapping[Any, Any]
    ) -> dict[str, Any] | None:
        stored = stored_learner(config.get(LEARNER_KEYS), tenant, learner)
        view = await queries.trail_view(pool, catalog, tenant, stored, competency)
        return None if view is None else await shown_view(config, pool, tenant, view, learner, stored)

    async def trail_evidence(
        self, pool: asyncpg.Pool, catalog: Any, tenant: str, learner: str, competency: str, *, config: Mapping[Any, Any]
    ) -> list[dict[str, Any]]:
        stored = stored_learner(config.get(LEARNER_KEYS), tenant, learner)
        view = await queries.trail_view(pool, catalog, tenant, stored, competency)
        return [] if view is None else view["evidence"]

    # -- operations page ----------------------------------------------------------

    async def position_at(self, conn: asyncpg.Connection, moment: datetime) -> int:
        return await queries.position_at(conn, moment)

    async def checkpoint_position(self, pool: asyncpg.Pool) -> int | None:
        return await checkpoint_position(pool, self.name)

    def runner(self, config: Mapping[Any, Any]) -> Supervisor | None:
        return config.get(SUPERVISOR)

    async def parked_events(self, pool: asyncpg.Pool, tenant: str) -> list[Any]:
        return await parked_events(pool, self.name, tenant)

    async def recent_requests(self, pool: asyncpg.Pool, tenant: str) -> list[Any]:
        return await recent_requests(pool, self.name, tenant)

    async def is_parked(self, pool: asyncpg.Pool, position: int, tenant: str) -> bool:
        return await is_parked(pool, self.name, position, tenant)

    async def request_retry(self, pool: asyncpg.Pool, position: int, tenant: str, requested_by: str) -> int:
        return await request_retry(pool, self.name, position, tenant, requested_by)
