"""Which failures mean the storage is unavailable, not that a request is wrong.

The database down, restarting or refusing connections, a connection lost in
the middle of a statement, the disk full: none of these is the client's
fault or a bug, and a later retry may succeed, so the HTTP layer answers
503 with ``Retry-After`` instead of 500.  An ``OSError`` reaching a handler
is the same kind of trouble (a socket refused, a spool file not written).
"""

from __future__ import annotations

import asyncpg

__all__ = ["storage_unavailable"]

_UNAVAILABLE: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,  # class 08: connection lost or refused
    asyncpg.exceptions.InsufficientResourcesError,  # class 53: disk full, out of memory, too many connections
    asyncpg.exceptions.OperatorInterventionError,  # class 57: shutting down, starting up, recovering, cancelled
    asyncpg.exceptions.ConnectionDoesNotExistError,
    OSError,
    TimeoutError,
)


def storage_unavailable(exc: BaseException) -> bool:
    """True for a failure of the database or the disk rather than of the request."""
    if isinstance(exc, _UNAVAILABLE):
        return True
    # asyncpg reports use of a connection that was closed under it as a plain InterfaceError,
    # and a connection returned to the pool as the server died as a protocol in a stuck state.
    if isinstance(exc, asyncpg.InterfaceError):
        return "connection is closed" in str(exc)
    return isinstance(exc, asyncpg.InternalClientError) and str(exc).startswith("cannot switch to state")
