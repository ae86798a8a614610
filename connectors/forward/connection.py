"""The forwarder's NATS connection and its dead-letter stream."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import nats
import nats.js.errors

from connectors.forward.definitions import dead_letter_stream_config
from connectors.forward.run import say
from lrs.nats.access import connect_options


async def connect(nats_url: str, name: str, *, keep_trying: bool = True) -> nats.NATS:
    """A NATS connection.  ``keep_trying``: a daemon's connection, which waits
    for the server (at start and after losing it) and reports errors in one
    line each; otherwise the first connection attempt must succeed."""
    last: dict[str, float] = {}

    async def on_error(exc: Exception) -> None:
        text = f"NATS: {type(exc).__name__}: {exc}"
        now = asyncio.get_running_loop().time()
        if now - last.get(text, -60.0) >= 30:  # the same error at most every 30 s
            last[text] = now
            say(text)

    nc = nats.NATS()
    try:
        await nc.connect(
            servers=[url.strip() for url in nats_url.split(",") if url.strip()], name=f"lrs-forward-{name}",
            allow_reconnect=keep_trying, max_reconnect_attempts=-1 if keep_trying else 1, reconnect_time_wait=1.0,
            connect_timeout=2, error_cb=on_error, **connect_options(url=nats_url),
        )
    except BaseException:
        with contextlib.suppress(Exception):
            await nc.close()  # cancelled while still trying: stop its tasks
        raise
    return nc


async def connect_unless_stopped(nats_url: str, name: str, stop: asyncio.Event) -> nats.NATS | None:
    """A daemon's connection (:func:`connect`), given up when ``stop`` is set
    before the server answers: None then.  The first connection retries for
    as long as the server is away, and a SIGTERM meanwhile must still stop
    the forwarder."""
    connecting = asyncio.ensure_future(connect(nats_url, name))
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({connecting, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        if not connecting.done():
            connecting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait({connecting})
    return None if connecting.cancelled() else connecting.result()


async def ensure_dead_letter_stream(js: Any) -> None:
    config = dead_letter_stream_config()
    try:
        await js.stream_info(config.name)
    except nats.js.errors.NotFoundError:
        try:
            await js.add_stream(config)
        except nats.js.errors.BadRequestError:
            await js.stream_info(config.name)  # created meanwhile by another forwarder

