"""Which failures mean the storage is unavailable, not that a request is wrong.

The database down, restarting or refusing connections, a connection lost in
the middle of a statement, the disk full: none of these is the client's
fault or a bug, and a later retry may succeed, so the HTTP layer answers
503 with ``Retry-After`` instead of 500.  An ``OSError`` reaching a handler
is the same kind of trouble (a socket refused, a spool file not written).

When PostgreSQL dies in the middle of a commit, asyncpg reports it in more
ways than a lost connection: a connection left half-way through a protocol
exchange raises ``InternalClientError`` ("cannot switch to state ...;
another operation is in progress") or ``InterfaceError`` ("another operation
is in progress", "connection is closed", "pool is closing") on its next use.
All of these are the storage failing under the request.  The members of the
InterfaceError family that describe a wrong call instead (``DataError``: a
value the codec cannot encode; a bad client configuration) stay 500: they are
bugs to fix, not outages to wait out.  Transient conflicts (class 40:
serialization failure, deadlock) are worth a retry too, and so is a lock
that was not granted within ``lock_timeout`` (an overloaded writer held it).
"""

from __future__ import annotations

import asyncpg

__all__ = ["StorageUnavailableError", "storage_unavailable"]


class StorageUnavailableError(RuntimeError):
    """The storage path of this process cannot take a request now (for
    example the statement writer's task ended and is being restarted); a
    later retry may succeed."""


_UNAVAILABLE: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,  # class 08: connection lost or refused
    asyncpg.exceptions.InsufficientResourcesError,  # class 53: disk full, out of memory, too many connections
    asyncpg.exceptions.OperatorInterventionError,  # class 57: shutting down, starting up, recovering, cancelled
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.TransactionRollbackError,  # class 40: serialization failure, deadlock
    asyncpg.exceptions.LockNotAvailableError,  # 55P03: lock_timeout ran out (a writer overloaded, not a bad request)
    asyncpg.exceptions.InternalClientError,  # a connection left mid-protocol ("cannot switch to state")
    # 25P03/25P04: the server ended a session idle in a transaction (or a
    # transaction) past an operator's idle_in_transaction_session_timeout
    # (transaction_timeout); the writer holds a begun transaction open between
    # groups (lrs.store.writer, begun_hold_s), so a setting below that hold ends it.
    asyncpg.exceptions.IdleInTransactionSessionTimeoutError,
    asyncpg.exceptions.TransactionTimeoutError,
    # A schema change (a migration while the service runs) invalidated a
    # cached statement inside a transaction; asyncpg has dropped its cache,
    # so a retry prepares again.
    asyncpg.exceptions.InvalidCachedStatementError,
    OSError,
    TimeoutError,
    StorageUnavailableError,
)


def storage_unavailable(exc: BaseException) -> bool:
    """True for a failure of the database or the disk rather than of the request."""
    if isinstance(exc, _UNAVAILABLE):
        return True
    # asyncpg reports use of a connection that was closed or broken under it as an InterfaceError.
    return isinstance(exc, asyncpg.InterfaceError) and not isinstance(exc, _CALLER_ERRORS)


_CALLER_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.DataError,
    asyncpg.exceptions.ClientConfigurationError,
    asyncpg.exceptions.UnsupportedClientFeatureError,
)
