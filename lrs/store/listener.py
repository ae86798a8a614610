"""One PostgreSQL ``LISTEN`` connection, reopened whenever it is lost.

Every process listens on a few channels (credential changes, learner key
erasures, the log's commit announcements).  A notification sent while the
listening connection is down is lost for good, so the caller is told
(``on_lost``) and told again once it listens (``on_listening``), and the
connection is opened again with a backoff (``retry_s`` doubling up to
``retry_max_s``): a connection terminated by ``pg_terminate_backend``, or
PostgreSQL restarted, costs one outage, not a listener gone for good.  A
network cut ends no connection by itself (no reset arrives, and asyncpg sets
no TCP keepalive), so the listening connection is asked ``SELECT 1`` every
``check_every_s`` and given up when it does not answer within
``check_timeout_s``.

Each outage is logged once (``listener.connection_lost`` or
``listener.unavailable`` when it begins, ``listener.listening_again`` when it
ends, with how many attempts it took) and counted in
``lrs_listener_reconnects{channel}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import AsyncIterator, Callable

import asyncpg
import structlog

from lrs import metrics
from lrs.tasks import cancel_and_wait

__all__ = ["listening"]

log = structlog.get_logger(__name__)


@contextlib.asynccontextmanager
async def listening(
    database_url: str,
    channel: str,
    *,
    on_notification: Callable[[str], None],
    on_lost: Callable[[], None] = lambda: None,
    on_listening: Callable[[], None] = lambda: None,
    on_alive: Callable[[float], None] = lambda _sent: None,
    retry_s: float = 0.1,
    retry_max_s: float = 2.0,
    startup_timeout_s: float = 5.0,
    connect_timeout_s: float = 10.0,
    check_every_s: float = 1.0,
    check_timeout_s: float = 5.0,
    application_name: str,
) -> AsyncIterator[None]:
    """Listen on ``channel`` for as long as the context lasts (entered once
    the first connection listens, or after ``startup_timeout_s`` if the
    database cannot be reached).  ``on_lost`` is called before the first
    connection listens and whenever one is lost, ``on_listening`` each time
    one listens.  ``on_alive(sent)``: a probe sent at ``sent``
    (``time.monotonic()``) was answered, so the session that delivered every
    notification before it was alive then."""
    first_listen = asyncio.Event()
    reconnects = metrics.LISTENER_RECONNECTS.labels(channel)

    def deliver(_conn: object, _pid: int, _channel: str, payload: str) -> None:
        on_notification(payload)

    async def listen_forever() -> None:
        failures = 0  # attempts since the last connection that listened
        outage_logged = False
        while True:
            lost = asyncio.Event()
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(
                    database_url, timeout=connect_timeout_s, server_settings={"application_name": application_name}
                )
                conn.add_termination_listener(lambda _conn: lost.set())
                await conn.add_listener(channel, deliver)
                if first_listen.is_set():
                    reconnects.inc()
                    log.info("listener.listening_again", channel=channel, attempts=failures)
                failures, outage_logged = 0, False
                on_listening()
                first_listen.set()
                silent = await _until_lost(conn, lost, check_every_s, check_timeout_s, on_alive)
                log.warning("listener.connection_lost", channel=channel, silent=silent)
                outage_logged = True
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                failures += 1
                if not outage_logged:
                    log.warning("listener.unavailable", channel=channel, error=repr(exc))
                    outage_logged = True
            finally:
                on_lost()
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await conn.close(timeout=1)
            await asyncio.sleep(min(retry_s * 2 ** max(failures - 1, 0), max(retry_max_s, retry_s)))

    on_lost()  # nothing is heard until the first connection listens
    task = asyncio.create_task(listen_forever(), name=f"listener:{channel}")
    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(first_listen.wait(), startup_timeout_s)
        yield
    finally:
        await cancel_and_wait(task)


async def _until_lost(
    conn: asyncpg.Connection, lost: asyncio.Event, every_s: float, timeout_s: float,
    on_alive: Callable[[float], None] = lambda _sent: None,
) -> bool:
    """Wait until ``conn`` is lost (False) or stops answering (True: it is
    terminated then).  The probe is not waited for past ``timeout_s``: cancelling
    a statement waits for the server to confirm, which a silent one never
    does."""
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(lost.wait(), every_s)
            return False
        sent = time.monotonic()
        probe = asyncio.ensure_future(conn.fetchval("SELECT 1"))
        probe.add_done_callback(_retrieved)
        done, _ = await asyncio.wait([probe], timeout=timeout_s)
        if not done:
            if lost.is_set():
                return False
            conn.terminate()  # the probe fails with it
            return True
        if probe.cancelled() or probe.exception() is not None:
            return False  # it failed as the connection was lost
        on_alive(sent)


def _retrieved(task: asyncio.Future) -> None:
    if not task.cancelled():
        task.exception()
