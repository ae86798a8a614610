"""What the console needs from the competency projection, declared here and
implemented by the projection package (:mod:`projections.console`).

The console imports no projection: the composition root (lrs/service.py)
puts an implementation under :data:`lrs.http.keys.CONSOLE_COMPETENCY`, and
the pages read it through ``request.config_dict``.  This module names no
driver; ``config`` is the request's ``config_dict`` and ``pool``/``conn``
the service's database handles, passed through untouched.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Mapping, Protocol, Sequence


class Unavailable(Exception):
    """The competency pages cannot answer now (the frameworks cannot be read,
    or no projection is installed); shown as an error page with ``status``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class RunnerState(Protocol):
    """The projection's runner in this process, as the operations page shows it."""

    state: str
    reason: str | None  # in English

    def reason_json(self) -> dict[str, Any]:
        """``reason``, ``reason_code`` and ``reason_values`` as the API gives them (lrs/console/projection_reasons.py)."""
        ...


class CompetencyPages(Protocol):
    """The reads behind the officials' pages: the same functions, catalogue
    and freshness as ``/competency/...``, so the console shows what the API answers."""

    # Errors the queries raise for a request that names nothing (each has ``status`` and ``message``).
    query_errors: tuple[type[Exception], ...]
    report_groupings: Sequence[str]  # by=
    report_parts: Sequence[str]  # part=
    report_formats: Sequence[str]  # format=
    report_languages: Sequence[str]  # language=

    async def catalog(self, config: Mapping[Any, Any]) -> tuple[Any, Any | None]:
        """The catalogue the API answers with now, and its freshness when that is
        not current (None when it is); raises :class:`Unavailable`."""
        ...

    async def unit_tree(self, pool: Any, tenant: str, *, program: Any) -> dict[str, Any]: ...

    async def unit_summary(
        self, pool: Any, catalog: Any, tenant: str, unit_id: str, *, program: Any, descendants: bool
    ) -> dict[str, Any]: ...

    # ``config`` (the request's config_dict) in the reads that name learners: with
    # personal data sealed they are shown by the identifier the roster holds
    # (``learner``, None once erased, then ``erased``) beside the projection's ``key``.
    async def unit_learners(
        self, pool: Any, catalog: Any, tenant: str, unit_id: str, *, program: Any, descendants: bool,
        after: str, limit: int, config: Mapping[Any, Any],
    ) -> dict[str, Any]: ...

    async def unit_series(
        self, pool: Any, tenant: str, unit_id: str, *, program: Any, descendants: bool,
        first: date, last: date, interval: str, clock: str,
    ) -> dict[str, Any]: ...

    async def unit_report(
        self, pool: Any, catalog: Any, tenant: str, unit_id: str, *, program: Any, by: str, config: Mapping[Any, Any]
    ) -> Any: ...

    def report_response(
        self, report: Any, unit_id: str, by: str, fmt: str, part: str, fresh: Any | None, language: str
    ) -> Any:
        """The report as a download in ``language``, as ``GET /competency/units/{unit}/report`` sends it."""
        ...

    async def learner_view(
        self, pool: Any, catalog: Any, tenant: str, learner: str, *, config: Mapping[Any, Any]
    ) -> dict[str, Any] | None: ...

    async def trail_view(
        self, pool: Any, catalog: Any, tenant: str, learner: str, competency: str, *, config: Mapping[Any, Any]
    ) -> dict[str, Any] | None: ...

    async def trail_evidence(
        self, pool: Any, catalog: Any, tenant: str, learner: str, competency: str, *, config: Mapping[Any, Any]
    ) -> list[dict[str, Any]]:
        """The trail's ``evidence`` alone (the learner page lists it under each
        certification): the learner is not looked up to be shown again."""
        ...


class ProjectionOperations(Protocol):
    """The projection's state and its parked events, for the operations page."""

    name: str  # the projection's checkpoint name

    async def position_at(self, conn: Any, moment: datetime) -> int:
        """The last log position stored at or before ``moment``."""
        ...

    async def checkpoint_position(self, pool: Any) -> int | None: ...

    def runner(self, config: Mapping[Any, Any]) -> RunnerState | None:
        """The runner in this process (None: it runs in another one, or not at all)."""
        ...

    async def parked_events(self, pool: Any, tenant: str) -> list[Any]: ...

    async def recent_requests(self, pool: Any, tenant: str) -> list[Any]: ...

    async def is_parked(self, pool: Any, position: int, tenant: str) -> bool: ...

    async def request_retry(self, pool: Any, position: int, tenant: str, requested_by: str) -> int: ...


class ConsoleCompetency(CompetencyPages, ProjectionOperations, Protocol):
    """Everything the console reads from the competency projection."""
