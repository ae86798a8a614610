"""Start-up failures that a person can fix, each said in one line.

A :class:`StartupError` carries a message naming the cause and what to do;
``lrs serve`` prints it as one line and exits non-zero (the traceback only
with ``LRS_LOG_LEVEL=debug``).  :func:`explain` gives that line for any
exception a start can meet.
"""

from __future__ import annotations

from lrs.url_redaction import redact_url


class StartupError(RuntimeError):
    """The service cannot start; the message says why and what to do."""


def port_in_use(host: str, port: int) -> StartupError:
    return StartupError(
        f"port {port} on {host} is already in use; stop whatever listens there, "
        "or choose another port with LRS_HTTP_PORT (or --port)"
    )


def cannot_listen(host: str, port: int, exc: OSError) -> StartupError:
    return StartupError(f"cannot listen on {host}:{port}: {exc.strerror or exc}; check LRS_HTTP_HOST and LRS_HTTP_PORT")


def database_unreachable(url: str, exc: BaseException) -> StartupError:
    reason = (exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc).strip()) or type(exc).__name__
    return StartupError(
        f"cannot use the database {redact_url(url)}: {reason}; check that PostgreSQL runs "
        "and that LRS_DATABASE_URL names it, its user and password"
    )


def nats_unreachable(url: str, waited_s: float, error: str | None) -> StartupError:
    return StartupError(
        f"cannot reach NATS at {redact_url(url)} within {waited_s:g} s ({error or 'no answer'}); check that "
        "nats-server runs and that LRS_NATS_URL names it, its user and password"
    )


def explain(exc: BaseException) -> str:
    """One line for ``exc``: its own message when it is a :class:`StartupError`."""
    from lrs.config import ConfigError
    from lrs.privacy.master import PrivacyKeyError
    from lrs.store.migrations import MigrationError

    if isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        return explain(exc.exceptions[0])
    if isinstance(exc, StartupError):
        return str(exc)
    if isinstance(exc, ConfigError):
        return f"configuration error: {exc}"
    if isinstance(exc, PrivacyKeyError):
        return f"privacy key: {exc}"
    if isinstance(exc, MigrationError):
        return (f"{exc}; the database stays at the migrations before it: fix the database "
                "(or restore it from a backup) and start again")
    first_line = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first_line} (LRS_LOG_LEVEL=debug shows where)"
