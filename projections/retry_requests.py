"""Retrying a parked event from any process (``projection_retry_requests``, 0045).

A parked event may be applied again only by the runner that holds the
projection's leader lock: the projection keeps state in memory that must see
every write.  The console (or any process) therefore does not apply it
itself; it records a request and sends ``NOTIFY lrs_projection_retry``.  The
leading runner hears the notification on its lock connection (and polls every
``poll_s`` in case one was lost), claims each open request, applies the event
with :meth:`projections.runner.ProjectionRunner.retry_parked` and records the
outcome: ``requested`` -> ``working`` -> ``done`` or ``failed`` (with the
error; the event stays parked).  A request left ``working`` by a runner that
died is claimed again after ``STALE_CLAIM``.

All of the table's SQL is here.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Awaitable, Callable

import asyncpg
import structlog

from lrs.tasks import cancel_and_wait

if TYPE_CHECKING:
    from projections.runner import ProjectionRunner

__all__ = ["CHANNEL", "RetryRequest", "recent_requests", "request_retry", "serve_retry_requests"]

log = structlog.get_logger(__name__)

CHANNEL = "lrs_projection_retry"
STALE_CLAIM = "5 minutes"

INSERT_REQUEST = f"""
WITH added AS (
    INSERT INTO projection_retry_requests (name, position, tenant, requested_by)
    VALUES ($1, $2, $3, $4) RETURNING id, name
)
SELECT added.id, pg_notify('{CHANNEL}', added.name) FROM added
"""
SELECT_RECENT = """
SELECT id, position, requested_by, requested_at, state, finished_at, error FROM projection_retry_requests
WHERE name = $1 AND tenant = $2 ORDER BY id DESC LIMIT $3
"""
CLAIM_NEXT = f"""
UPDATE projection_retry_requests SET state = 'working', claimed_at = now()
WHERE id = (
    SELECT id FROM projection_retry_requests
    WHERE name = $1 AND (state = 'requested' OR (state = 'working' AND claimed_at < now() - interval '{STALE_CLAIM}'))
    ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED
)
RETURNING id, position, tenant
"""
REOPEN = "UPDATE projection_retry_requests SET state = 'requested', claimed_at = NULL WHERE id = $1"
FINISH = "UPDATE projection_retry_requests SET state = $2, error = $3, finished_at = now() WHERE id = $1"


@dataclass(frozen=True, slots=True)
class RetryRequest:
    id: int
    position: int
    requested_by: str
    requested_at: datetime
    state: str
    finished_at: datetime | None
    error: str | None

    @property
    def open(self) -> bool:
        return self.state in ("requested", "working")


async def request_retry(pool: asyncpg.Pool, name: str, position: int, tenant: str, requested_by: str) -> int:
    """Ask the leading runner of ``name`` to apply the parked event again; the request's id."""
    row = await pool.fetchrow(INSERT_REQUEST, name, position, tenant, requested_by)
    return int(row["id"])


async def recent_requests(pool: asyncpg.Pool, name: str, tenant: str, limit: int = 20) -> list[RetryRequest]:
    """The latest requests of ``tenant``, newest first."""
    rows = await pool.fetch(SELECT_RECENT, name, tenant, limit)
    return [RetryRequest(**dict(row)) for row in rows]


async def carry_out_requests(runner: "ProjectionRunner") -> int:
    """Claim and carry out the open requests of the runner's projection; how many."""
    done = 0
    while True:
        row = await runner.pool.fetchrow(CLAIM_NEXT, runner.name)
        if row is None:
            return done
        try:
            error = await runner.retry_parked(row["position"], row["tenant"])
        except LookupError as exc:
            error = str(exc)
        except Exception:  # a transient failure: asked again on the next round
            await runner.pool.execute(REOPEN, row["id"])
            raise
        await runner.pool.execute(FINISH, row["id"], "failed" if error else "done", error)
        log.info("projection.retry_request", projection=runner.name, id=row["id"], position=row["position"],
                 outcome="failed" if error else "done")
        done += 1


def serve_retry_requests(
    runner: "ProjectionRunner", lock_conn: asyncpg.Connection, *, poll_s: float = 5.0
) -> Callable[[], Awaitable[None]]:
    """Start carrying out the retry requests of the runner's projection, as they
    are notified on ``lock_conn`` (the connection holding the leader lock) and
    every ``poll_s``; returns the coroutine function that stops it."""
    wake = asyncio.Event()
    wake.set()  # requests made while no runner led

    def heard(_conn: object, _pid: int, _channel: str, name: str) -> None:
        if name == runner.name:
            wake.set()

    async def serve() -> None:
        await lock_conn.add_listener(CHANNEL, heard)
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(wake.wait(), poll_s)
            wake.clear()
            try:
                await carry_out_requests(runner)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("projection.retry_requests_failed", projection=runner.name, error=repr(exc))
            except Exception as exc:  # noqa: BLE001 - anything else must not end the serving for good
                log.error("projection.retry_requests_failed", projection=runner.name, error=repr(exc), alert=True)

    task = asyncio.create_task(serve(), name=f"retry-requests-{runner.name}")

    async def stop() -> None:
        await cancel_and_wait(task)
        with contextlib.suppress(Exception):
            await lock_conn.remove_listener(CHANNEL, heard)

    return stop
