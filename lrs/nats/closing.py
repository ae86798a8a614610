"""Closing a nats-py client so that nothing of it keeps running.

nats-py's ``close`` first flushes what the client still had to send, and only
then stops its subscriptions' tasks (the request inbox's among them) and
closes the transport.  On a connection lost under the client (one whose
reconnect loop ended, which lrs replaces: lrs.nats.bus, projections'
jetstream_loop) that flush raises ``ConnectionResetError``, or waits, and the
subscriptions' tasks were left waiting for ever on the process's loop, one
set for every client replaced."""

from __future__ import annotations

import asyncio
import contextlib

from nats.aio.client import Client as NatsClient


async def close_client(nc: NatsClient, seconds: float | None = None) -> BaseException | None:
    """Close ``nc`` (waiting at most ``seconds``); whatever the close did, stop
    what it left: its subscriptions' tasks and its transport.  Returns the
    error of a close that failed or took longer (asyncio.TimeoutError), None
    when it closed."""
    error: BaseException | None = None
    try:
        await asyncio.wait_for(nc.close(), seconds)
    except Exception as exc:  # noqa: BLE001 - a transport closed under it raises RuntimeError too
        error = exc
    finally:
        # What nats-py's close does after its flush (nats/aio/client.py
        # _close); nothing is left here after a close that finished.
        subscriptions = getattr(nc, "_subs", {})
        for sub in list(subscriptions.values()):
            sub._stop_processing()
        subscriptions.clear()
        transport = getattr(nc, "_transport", None)
        if error is not None and transport is not None:
            with contextlib.suppress(Exception):  # one that never connected has no stream to close
                transport.close()
    return error
