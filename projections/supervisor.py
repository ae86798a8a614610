"""The competency projection inside ``lrs serve``: run it, rebuild it, and say
whether its answers may be served.

One supervisor per service.  It runs the projection (from JetStream, or from
the PostgreSQL log without NATS) and never stops for good:

- a projection built with other rules or frameworks (outdated) is rebuilt
  from the log in the background (``LRS_COMPETENCY_AUTO_REBUILD``, else it
  waits), and the runner resumes by itself once the checkpoint matches
  again, whoever replayed (the service, or ``lrs replay competency``);
- the frameworks documents are read again every ``LRS_FRAMEWORKS_POLL_S``;
  when they change, the runner stops, the projection is rebuilt from the log
  with the new documents while the previous answers are served (marked), and
  the new tables and catalog are swapped in without a restart.

:meth:`Supervisor.freshness` tells a request whether the answer is current:
``current``; ``rebuilding`` with the previous tables and catalog (served,
marked); or ``outdated``, ``rebuilding`` (nothing previous to serve),
``stopped`` or ``behind`` (the first event the projection has not applied
was stored more than ``LRS_COMPETENCY_STALE_AFTER_S`` ago): refused with 503 and the reason,
unless the request asks for the last answer anyway (``stale=ok``).  The reason
is a code with its values and an English sentence (projections/freshness_reasons.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import asyncpg
import structlog

from lrs import projection_health
from projections.competency.catalog import Catalog, load_live_catalog
from projections.competency.frameworks import FrameworkError
from projections.contract import Projection, ProjectionOutdated
from projections.freshness_reasons import Reason, error_values, reason_json
from projections.log_chain import ChainBroken

__all__ = ["Freshness", "ObservedProjection", "Supervisor", "checked_freshness", "observed_freshness", "until_rebuilt"]

log = structlog.get_logger("lrs.projections")

# How old an answer is: since the first event it does not reflect was stored
# (0 when the checkpoint is the log head).
SELECT_POSITIONS = """
SELECT c.position, h.position AS head,
       coalesce(extract(epoch FROM now() - (SELECT stored FROM events e WHERE e.position = coalesce(c.position, 0) + 1)), 0)
           AS age_s
FROM log_head h LEFT JOIN projection_checkpoints c ON c.name = 'competency' WHERE h.singleton
"""

SELECT_BUILT_WITH = "SELECT rule_version, catalog_digest FROM projection_checkpoints WHERE name = 'competency'"

# A rebuild that found the log's hash chain broken is not tried again every
# poll (each try reads the whole log): an altered log waits for a person
# (`lrs audit verify`, restoring the log); the service retries this seldom.
LOG_CHAIN_BROKEN_PAUSE_S = 600.0


@dataclass(frozen=True, slots=True)
class Freshness:
    state: str  # current | rebuilding | outdated | stopped | behind | starting
    why: Reason | None  # None: current
    serve: bool  # the answer may be computed (current, or previous answers while rebuilding)
    catalog: Catalog | None  # the catalog the tables were built with, when known
    position: int
    log_head: int
    age_s: float  # since the first event the answer does not reflect was stored (0: none)

    @property
    def reason(self) -> str | None:
        """Why, in English (the API's ``reason`` since before there were codes)."""
        return None if self.why is None else self.why.text

    def json(self) -> dict[str, Any]:
        return {
            "state": self.state, **reason_json(self.why), "position": self.position, "log_head": self.log_head,
            "age_s": round(self.age_s, 1),
        }


class Supervisor:
    def __init__(
        self,
        pool: asyncpg.Pool,
        catalog: Catalog,
        *,
        frameworks_dir: Path | None,
        nats_url: str | None,
        wake: asyncio.Event,
        stale_after_s: float = 30.0,
        poll_s: float = 5.0,
        auto_rebuild: bool = True,
        load_catalog: Callable[[Path | None], Catalog] = load_live_catalog,
        build_projection: Callable[[Catalog], Projection],
    ) -> None:
        self.pool = pool
        # The projection for a catalog, as the composition root builds it
        # (lrs.service.competency_projection); built again whenever the documents change.
        self._build_projection = build_projection
        self.catalog = catalog  # the documents as last read
        self.runner: Any = None  # the ProjectionRunner while running (the console retries parked events with it)
        self.serving: Catalog | None = None  # the catalog the live tables were built with, once known
        self.state = "starting"
        self.why: Reason | None = None
        self.frameworks_dir = frameworks_dir
        self.nats_url = nats_url
        self.wake = wake
        self.stale_after_s = stale_after_s
        self.poll_s = poll_s
        self.auto_rebuild = auto_rebuild
        self._load_catalog = load_catalog
        self._stop = asyncio.Event()
        self._runner_stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # -- lifecycle -----------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._supervise(), name="projection-competency")

    async def close(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._runner_stop.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(self._task, timeout)

    @property
    def reason(self) -> str | None:
        """Why the projection is in its state, in English (None: running)."""
        return None if self.why is None else self.why.text

    def reason_json(self) -> dict[str, Any]:
        """``reason``, ``reason_code`` and ``reason_values`` as the API gives them."""
        return reason_json(self.why)

    def _set(self, state: str, why: Reason | None = None) -> None:
        if (state, why) != (self.state, self.why):
            log.info("projection.state", projection="competency", state=state, reason=why and why.text,
                     reason_code=why and why.code)
        self.state, self.why = state, why
        text = self.reason
        # The same state for /ready and /metrics (lrs.projection_health).
        if state == "running":
            projection_health.runner_started("competency")
        elif state == "outdated":
            projection_health.runner_outdated("competency", text or "outdated")
        elif state in ("stopped", "rebuilding"):
            projection_health.runner_stopped("competency", text)

    def _outdated(self, exc: ProjectionOutdated) -> Reason:
        """Why the projection is outdated, and what is done about it: this
        service rebuilds it (LRS_COMPETENCY_AUTO_REBUILD), or the user runs
        the replay that ``exc`` names."""
        return Reason.of("rebuilds_itself" if self.auto_rebuild else "no_auto_rebuild", **exc.values)

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

    async def _supervise(self) -> None:
        from projections.replay import ReplayRunning, replay
        from projections.runner import ProjectionRunner

        watcher = asyncio.create_task(self._watch_frameworks(), name="frameworks-watch")
        try:
            while not self._stop.is_set():
                catalog = self.catalog
                projection = self._build_projection(catalog)
                runner = ProjectionRunner(self.pool, projection)
                try:
                    await runner.checkpoint()
                except ProjectionOutdated as exc:
                    if not self.auto_rebuild:
                        self._set("outdated", self._outdated(exc))
                        await self._pause(self.poll_s or 2.0)  # resumes once someone replays
                        continue
                    self._set("rebuilding", Reason.of("rebuilding_itself", **exc.values))
                    try:
                        await replay(self.pool, projection)
                    except ReplayRunning:
                        self._set("rebuilding", Reason.of("other_replay"))
                        await self._pause(2.0)
                        continue
                    except ChainBroken as exc:
                        log.error("projection.log_chain_broken", projection="competency", position=exc.position,
                                  retry_in_s=LOG_CHAIN_BROKEN_PAUSE_S, alert=True)
                        self._set("stopped", Reason.of("log_chain_broken", position=exc.position))
                        await self._pause(LOG_CHAIN_BROKEN_PAUSE_S)
                        continue
                    except Exception as exc:  # keep serving what we can; try again
                        log.exception("projection.rebuild_failed", projection="competency", error=repr(exc), alert=True)
                        self._set("stopped", Reason.of("rebuild_failed", **error_values(exc)))
                        await self._pause(self.poll_s or 5.0)
                        continue
                    continue  # check the checkpoint again, then run
                except Exception as exc:
                    log.exception("projection.crashed", projection="competency", error=repr(exc))
                    self._set("stopped", Reason.of("checkpoint_unreadable", **error_values(exc)))
                    await self._pause(1.0)
                    continue
                if catalog is not self.catalog:  # the documents changed meanwhile
                    continue
                self.serving = catalog
                self.runner = runner
                self._set("running")
                self._runner_stop = asyncio.Event()
                if self._stop.is_set():
                    break
                try:
                    if self.nats_url is not None:
                        await runner.run(self.nats_url, self._runner_stop)
                    else:
                        await runner.follow(self._runner_stop, self.wake)
                except ProjectionOutdated as exc:  # another process replayed with other documents
                    self._set("outdated", self._outdated(exc))
                except Exception as exc:  # keep serving; try again shortly
                    log.exception("projection.crashed", projection="competency", error=repr(exc))
                    self._set("stopped", Reason.of("runner_failed", **error_values(exc)))
                    await self._pause(1.0)
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            if self.state == "running":
                self._set("stopped", Reason.of("stopping"))

    async def _watch_frameworks(self) -> None:
        """Read the documents again every ``poll_s``; a valid change stops the
        runner so that the supervisor rebuilds with the new catalog (the
        previous catalog keeps serving until the swap)."""
        if not self.poll_s:
            return
        while not self._stop.is_set():
            await self._pause(self.poll_s)
            try:
                found = await asyncio.to_thread(self._load_catalog, self.frameworks_dir)
            except FrameworkError as exc:
                log.error("competency.frameworks_invalid", error=str(exc), alert=True)
                continue
            if found.digest != self.catalog.digest:
                log.info("competency.frameworks_changed", digest=found.digest)
                self.catalog = found
                self._runner_stop.set()

    # -- may this answer be served? ---------------------------------------------------

    async def freshness(self) -> Freshness:
        position, head, age = await log_positions(self.pool)
        state, why = self.state, self.why
        rebuilding = self.serving is not None and self.serving.digest != self.catalog.digest
        if state == "running" and rebuilding:
            state, why = "rebuilding", Reason.of("frameworks_changed")
        if state == "running" or (state == "starting" and position >= head):
            return positional_freshness(self.serving or self.catalog, position, head, age, self.stale_after_s)
        if state == "rebuilding" and self.serving is not None:
            return Freshness("rebuilding", why, True, self.serving, position, head, age)
        # every state but starting is set with its reason
        return Freshness(state, why or Reason.of("starting"), False, self.serving, position, head, age)


def until_rebuilt(fresh: Freshness | None) -> str:
    """For an answer refused until the projection is rebuilt under these
    rules (a learner's state stored under others): what is being done about
    it and what the asker can do, as ``fresh`` (the projection's freshness
    when asked) says.  A projection whose checkpoint names these rules
    (current) is rebuilt by nothing but a replay."""
    if fresh is None or fresh.state == "current":
        return "run `lrs replay competency`"
    if fresh.state == "rebuilding":
        return f"the projection is rebuilding ({fresh.reason}): ask again once it is done"
    return f"the projection is {fresh.state}: {fresh.reason}"


async def log_positions(pool: asyncpg.Pool) -> tuple[int, int, float]:
    """The projection's checkpoint, the log head, and how long ago the first
    event the checkpoint does not cover was stored (0: none)."""
    row = await pool.fetchrow(SELECT_POSITIONS)
    return int(row["position"] or 0), int(row["head"] or 0), float(row["age_s"] or 0.0)


def positional_freshness(catalog: Catalog, position: int, head: int, age: float, stale_after_s: float) -> Freshness:
    """Current, or behind (not served) when the first event the projection has
    not applied was stored more than ``stale_after_s`` ago."""
    if position < head and age > stale_after_s:
        return Freshness("behind", Reason.of("behind", events=head - position, age_s=round(age)), False, catalog,
                         position, head, age)
    return Freshness("current", None, True, catalog, position, head, age)


class ObservedProjection:
    """The competency projection of a service that does not run it (it runs in
    another process: ``LRS_HTTP_WORKERS`` > 1, or ``lrs project`` beside a
    service with ``LRS_PROJECTIONS_ENABLED=false``).  Says how fresh answers
    are from the log and the checkpoint, and follows the documents the other
    process rebuilt with: when the tables were built with other frameworks
    than this service's, the documents are read again (at most every
    ``poll_s``) and taken once they match; until then answers are outdated."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        catalog: Catalog,
        *,
        frameworks_dir: Path | None,
        stale_after_s: float,
        poll_s: float,
        load_catalog: Callable[[Path | None], Catalog] = load_live_catalog,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.pool = pool
        self.catalog = catalog
        self.frameworks_dir = frameworks_dir
        self.stale_after_s = stale_after_s
        self.poll_s = poll_s or 5.0
        self._load_catalog = load_catalog
        self._clock = clock
        self._read_at: float | None = None

    async def freshness(self) -> Freshness:
        fresh = await checked_freshness(self.pool, self.catalog, self.stale_after_s)
        now = self._clock()
        if fresh.state != "outdated" or (self._read_at is not None and now - self._read_at < self.poll_s):
            return fresh
        self._read_at = now
        try:
            found = await asyncio.to_thread(self._load_catalog, self.frameworks_dir)
        except FrameworkError as exc:
            log.error("competency.frameworks_invalid", error=str(exc), alert=True)
            return fresh
        if found.digest == self.catalog.digest:
            return fresh
        again = await checked_freshness(self.pool, found, self.stale_after_s)
        if again.state == "outdated":
            return fresh
        log.info("competency.frameworks_followed", digest=found.digest)
        self.catalog = found
        return again


async def observed_freshness(pool: asyncpg.Pool, catalog: Catalog, stale_after_s: float) -> Freshness:
    """How fresh the answers of a service whose projection runs in another
    process are (``LRS_HTTP_WORKERS`` > 1, or ``lrs project`` beside a service
    with ``LRS_PROJECTIONS_ENABLED=false``): only what the log and the
    checkpoint show, so a projection that stopped or fell behind is refused
    like one supervised here."""
    position, head, age = await log_positions(pool)
    return positional_freshness(catalog, position, head, age, stale_after_s)


async def checked_freshness(pool: asyncpg.Pool, catalog: Catalog, stale_after_s: float) -> Freshness:
    """:func:`observed_freshness`, and outdated when the tables were built with
    other rules or frameworks than ``catalog`` (a command such as ``lrs
    report``, which reads the documents as they are now)."""
    from projections.competency.store import CompetencyProjection

    row = await pool.fetchrow(SELECT_BUILT_WITH)
    rules = CompetencyProjection.rule_version
    if row is not None and (row["rule_version"], row["catalog_digest"]) != (rules, catalog.digest):
        position, head, age = await log_positions(pool)
        why = Reason.of("built_with_other", projection="competency", built_rules=row["rule_version"],
                     built_digest=row["catalog_digest"], rules=rules, digest=catalog.digest)
        return Freshness("outdated", why, False, None, position, head, age)
    return await observed_freshness(pool, catalog, stale_after_s)
