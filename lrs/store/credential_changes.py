"""Hearing credential changes (revocations) made by any process.

:mod:`lrs.store.credentials` sends ``NOTIFY lrs_credentials, '<key>'`` with
every change.  Each service process keeps one listening connection and
calls ``on_change(key)`` for each, so a revoked key stops working in every
process as soon as PostgreSQL delivers the notification (milliseconds), not
when a cache entry expires.

A notification sent while the listener is disconnected is lost, so while it
is down ``on_lost()`` is called (the caller stops trusting its cache) and the
listener reconnects after ``retry_s``, then backing off
(:mod:`lrs.store.listener`); once it listens again ``on_listening()`` is called.
"""

from __future__ import annotations

import contextlib
from typing import AsyncIterator, Callable

from lrs.store.credentials import CHANGES_CHANNEL
from lrs.store.listener import listening

__all__ = ["credential_changes"]


@contextlib.asynccontextmanager
async def credential_changes(
    database_url: str,
    *,
    on_change: Callable[[str], None],
    on_lost: Callable[[], None],
    on_listening: Callable[[], None],
    on_alive: Callable[[float], None] = lambda _sent: None,
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
    async with listening(
        database_url, channel, on_notification=on_change, on_lost=on_lost, on_listening=on_listening,
        on_alive=on_alive, retry_s=retry_s, startup_timeout_s=startup_timeout_s, application_name=application_name,
    ):
        yield
