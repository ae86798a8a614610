"""Hearing credential changes (revocations) made by any process.

:mod:`lrs.store.credentials` sends ``NOTIFY lrs_credentials, '<key>'`` with
every change.  Each service process keeps one listening connection and
calls ``on_change(key)`` for each, so a revoked key stops working in every
process as soon as PostgreSQL delivers the notification (milliseconds), not
when a cache entry expires.

A notification sent while the listener is disconnected is lost, so while it
is down ``on_lost()`` is called (the caller stops trusting its cache) and the
listener reconnects every ``retry_s``; once it listens again ``on_listening()``
is called.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import AsyncIterator, Callable

import asyncpg
import structlog

from lrs.store.credentials import CHANGES_CHANNEL
from lrs.tasks import cancel_and_wait

__all__ = ["credential_changes"]

log = structlog.get_logger(__name__)


@contextlib.asynccontextmanager
async def credential_changes(
    database_url: str,
    *,
    on_change: Callable[[str], None],
    on_lost: Callable[[], None],
    on_listening: Callable[[], None],
    retry_s: float = 1.0,
    startup_timeout_s: float = 5.0,
    channel: str = CHANGES_CHANNEL,
    application_name: str = "lrs-credentials",
) -> AsyncIterator[None]:
    """Listen for credential changes for as long as the context lasts (the
    context is entered once the first connection listens, or after
    ``startup_timeout_s`` if the database cannot be reached).  ``channel``:
    another channel with the same contract (the erasure of learner keys,
    :mod:`lrs.store.learner_keys`)."""
    first_listen = asyncio.Event()

    def deliver(_conn: object, _pid: int, _channel: str, key: str) -> None:
        on_change(key)

    async def listen_forever() -> None:
        while True:
            lost = asyncio.Event()
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(database_url, server_settings={"application_name": application_name})
                conn.add_termination_listener(lambda _conn: lost.set())
                await conn.add_listener(channel, deliver)
                on_listening()
                first_listen.set()
                await lost.wait()
                log.warning("credential_changes.connection_lost")
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("credential_changes.unavailable", error=repr(exc))
            finally:
                on_lost()
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await conn.close(timeout=1)
            await asyncio.sleep(retry_s)

    on_lost()  # nothing is heard until the first connection listens
    task = asyncio.create_task(listen_forever(), name="credential-changes")
    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(first_listen.wait(), startup_timeout_s)
        yield
    finally:
        await cancel_and_wait(task)
