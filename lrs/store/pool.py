"""The asyncpg connection pool the service shares.

Connections start with ``synchronous_commit = on`` (a 200 means the commit is
on disk) and a recognisable ``application_name``.  No custom codecs are
needed: uuid, bytea, text[] and timestamptz map to Python natively, and the
store keeps statement JSON as bytes.
"""

from __future__ import annotations

import asyncpg

SERVER_SETTINGS = {
    "application_name": "lrs",
    "synchronous_commit": "on",
    # A stuck lock wait should surface as an error, not hang a request forever.
    "lock_timeout": "30s",
    "idle_in_transaction_session_timeout": "60s",
}


async def create_pool(
    database_url: str,
    *,
    min_size: int = 2,
    max_size: int = 8,
    command_timeout: float | None = 60.0,
    application_name: str = "lrs",
) -> asyncpg.Pool:
    """A pool of ``min_size``..``max_size`` connections to ``database_url``."""
    settings = dict(SERVER_SETTINGS, application_name=application_name)
    pool = await asyncpg.create_pool(
        database_url,
        min_size=min_size,
        max_size=max_size,
        command_timeout=command_timeout,
        server_settings=settings,
        # Idle connections are closed after five minutes; the writer's stays busy.
        max_inactive_connection_lifetime=300.0,
    )
    assert pool is not None
    return pool


async def connect(database_url: str, *, application_name: str = "lrs") -> asyncpg.Connection:
    """One connection to ``database_url`` with the pool's settings (for work
    outside a pool, such as a replay's forked workers)."""
    return await asyncpg.connect(
        database_url, server_settings=dict(SERVER_SETTINGS, application_name=application_name)
    )
