"""A database or disk that fails under a request is a 503 to retry, not a 500."""

from __future__ import annotations

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from lrs.http.middleware import error_mapping
from lrs.store.availability import storage_unavailable

UNAVAILABLE = [
    asyncpg.exceptions.DiskFullError('could not write to file "pg_wal/xlogtemp.1": No space left on device'),
    asyncpg.exceptions.CannotConnectNowError("the database system is in recovery mode"),
    asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
    asyncpg.exceptions.TooManyConnectionsError("sorry, too many clients already"),
    asyncpg.InterfaceError("cannot call Transaction.__aexit__(): the underlying connection is closed"),
    # PostgreSQL killed mid-commit: the connection is left half-way through an exchange.
    asyncpg.exceptions.InternalClientError("cannot switch to state 15; another operation (2) is in progress"),
    asyncpg.exceptions.ProtocolError("unexpected message"),
    asyncpg.InterfaceError("cannot perform operation: another operation is in progress"),
    asyncpg.InterfaceError("pool is closing"),
    asyncpg.exceptions.SerializationError("could not serialize access"),
    asyncpg.exceptions.DeadlockDetectedError("deadlock detected"),
    # lock_timeout (lrs/store/pool.py) ran out: a writer overloaded long enough to hold the log head 30 s.
    asyncpg.exceptions.LockNotAvailableError("canceling statement due to lock timeout"),
    # An operator's idle_in_transaction_session_timeout shorter than the writer's begun hold.
    asyncpg.exceptions.IdleInTransactionSessionTimeoutError(
        "terminating connection due to idle-in-transaction timeout"),
    asyncpg.exceptions.TransactionTimeoutError("terminating connection due to transaction timeout"),
    FileNotFoundError(2, "No such file or directory"),  # the server's socket is gone
    ConnectionRefusedError(111, "Connection refused"),
    TimeoutError(),
]
NOT_UNAVAILABLE = [
    RuntimeError("a bug"),
    asyncpg.exceptions.UniqueViolationError("duplicate key value"),
    asyncpg.exceptions.DataError("invalid input for query argument $1"),
    asyncpg.exceptions.ClientConfigurationError("bad DSN"),
]


async def _answer(exc: BaseException) -> tuple[int, dict, dict]:
    async def fail(request: web.Request) -> web.Response:
        raise exc

    app = web.Application(middlewares=[error_mapping])
    app.router.add_post("/xapi/statements", fail)
    async with TestClient(TestServer(app)) as client:
        response = await client.post("/xapi/statements", data=b"[]")
        return response.status, dict(response.headers), await response.json()


@pytest.mark.parametrize("exc", UNAVAILABLE, ids=lambda e: type(e).__name__)
async def test_storage_failures_are_503_with_retry_after(exc: BaseException) -> None:
    assert storage_unavailable(exc)
    status, headers, body = await _answer(exc)
    assert status == 503 and headers["Retry-After"] == "5"
    assert type(exc).__name__ in body["error"] and "may or may not have been committed" in body["error"]


@pytest.mark.parametrize("exc", NOT_UNAVAILABLE, ids=lambda e: type(e).__name__)
async def test_other_failures_stay_500(exc: BaseException) -> None:
    assert not storage_unavailable(exc)
    status, headers, body = await _answer(exc)
    assert status == 500 and "Retry-After" not in headers
    assert body["error"].startswith("internal error")
