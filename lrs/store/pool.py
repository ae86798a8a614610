"""The asyncpg connection pool the service shares.

Connections start with ``synchronous_commit = on`` (a 200 means the commit is
on disk) and a recognisable ``application_name``.  No custom codecs are
needed: uuid, bytea, text[] and timestamptz map to Python natively, and the
store keeps statement JSON as bytes.
"""

from __future__ import annotations

import asyncio

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


async def _keep_session(connection: asyncpg.Connection) -> None:
    """A release that sends nothing: asyncpg has already rolled back an open
    transaction and dropped listeners (``Connection._reset`` runs before a
    pool's ``reset``)."""


async def create_statement_pool(
    database_url: str, *, application_name: str, max_size: int = 1, command_timeout: float | None = 60.0,
    settings: dict[str, str] | None = None,
) -> asyncpg.Pool:
    """A small pool for work made only of single statements that change
    nothing in the session (no SET, LISTEN, cursor or advisory lock held past
    the statement): its connections are not reset on release.  The shared
    pool's reset (``SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *;
    RESET ALL;``) is one more round trip and one more PostgreSQL transaction
    on every use, as many as the work itself when the work is one statement
    (the learner keys' statement: docs/privacy.md "Cost").  asyncpg's
    ``reset`` argument (public since 0.30) replaces it.  ``settings``: more
    server settings its connections keep for their whole life."""
    pool = await asyncpg.create_pool(
        database_url,
        min_size=0,
        max_size=max_size,
        command_timeout=command_timeout,
        server_settings=dict(SERVER_SETTINGS, application_name=application_name, **(settings or {})),
        max_inactive_connection_lifetime=300.0,
        reset=_keep_session,
    )
    assert pool is not None
    return pool


async def close_pool(pool: asyncpg.Pool, *, timeout_s: float = 2.0) -> None:
    """Close ``pool``, its connections terminated after ``timeout_s``: a
    connection's close waits for PostgreSQL to answer its Terminate message,
    which a database host gone quiet (not refusing connections) never does,
    and asyncpg's ``Pool.close`` has no timeout of its own (a shutdown hung
    there, after the writer's bounded close: tests/integration/
    test_writer_close_unreachable.py)."""
    try:
        await asyncio.wait_for(pool.close(), timeout_s)
    except TimeoutError:
        pool.terminate()  # asyncpg terminates on a cancelled close already; idempotent


async def connect(database_url: str, *, application_name: str = "lrs") -> asyncpg.Connection:
    """One connection to ``database_url`` with the pool's settings (for work
    outside a pool, such as a replay's forked workers)."""
    return await asyncpg.connect(
        database_url, server_settings=dict(SERVER_SETTINGS, application_name=application_name)
    )
