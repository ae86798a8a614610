"""Commit notifications between processes sharing one log.

Within one process the writer calls its ``committed`` hooks (the relay's
``notify``).  When several HTTP worker processes share the log
(``LRS_HTTP_WORKERS`` > 1) the relay runs in a process of its own, so each
group commit also sends ``NOTIFY lrs_log, '<head position>'``: PostgreSQL
delivers it when (and only if) the transaction commits, and the relay's
listener wakes it at once instead of at its next poll.
"""

from __future__ import annotations

import contextlib
from typing import AsyncIterator, Callable

import asyncpg
import structlog

__all__ = ["LOG_CHANNEL", "NOTIFY_HEAD", "commit_notifications"]

LOG_CHANNEL = "lrs_log"
NOTIFY_HEAD = "SELECT pg_notify('lrs_log', $1::text)"

log = structlog.get_logger(__name__)


@contextlib.asynccontextmanager
async def commit_notifications(database_url: str, on_commit: Callable[[int], None]) -> AsyncIterator[None]:
    """Call ``on_commit(head position)`` for every group commit any writer
    of the log announces, for as long as the context lasts.  Notifications
    are a shortcut: a listener that loses its connection logs it, and the
    caller's polling still finds every commit."""

    def deliver(_conn: object, _pid: int, _channel: str, payload: str) -> None:
        try:
            on_commit(int(payload))
        except Exception as exc:  # noqa: BLE001 - a bad payload must not stop the listener
            log.error("commit_notification.failed", payload=payload, error=repr(exc))

    conn = await asyncpg.connect(database_url, server_settings={"application_name": "lrs-commit-listener"})
    conn.add_termination_listener(lambda _conn: log.warning("commit_notification.connection_lost"))
    try:
        await conn.add_listener(LOG_CHANNEL, deliver)
        yield
    finally:
        with contextlib.suppress(Exception):
            await conn.close(timeout=2)
