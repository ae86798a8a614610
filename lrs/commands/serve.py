"""``lrs serve``: run the LRS HTTP service (and the relay to JetStream).

A start that cannot succeed ends within seconds with one line on stderr that
names the cause and what to do, and a non-zero exit status; the traceback is
shown only with ``LRS_LOG_LEVEL=debug``.  The listening port is taken first,
before any server starts, so "port in use" is immediate.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import errno
import socket
import sys
from typing import Callable

import structlog
from aiohttp import web

from lrs.commands.common import load_settings, run_async, settle_heap, setup, stop_signals
from lrs.config import ConfigError, Settings
from lrs.startup import cannot_listen, explain, port_in_use

log = structlog.get_logger("lrs.serve")


AppFactory = Callable[..., web.Application]  # lrs.http.app.create_app's signature


def register(subparsers: argparse._SubParsersAction, *, create_app: AppFactory) -> None:
    """``create_app``: builds the service (the composition root's, lrs/service.py)."""
    parser = subparsers.add_parser(
        "serve",
        help="run the xAPI service",
        description=(
            "Run the xAPI HTTP service. Configuration comes from LRS_* environment variables "
            "(see docs/operations.md). Without LRS_DATABASE_URL / LRS_NATS_URL it starts a private "
            "PostgreSQL and nats-server under LRS_DATA_DIR, restarts either if it dies, and stops "
            "them on exit. A failed start prints one line naming the cause and exits non-zero."
        ),
    )
    parser.add_argument("--host", help="listen address (default: LRS_HTTP_HOST or 127.0.0.1)")
    parser.add_argument("--port", type=int, help="listen port (default: LRS_HTTP_PORT or 8080)")
    parser.set_defaults(handler=_run, create_app=create_app)


def _run(args: argparse.Namespace) -> int:
    settings = load_settings()
    overrides = {}
    if args.host:
        overrides["http_host"] = args.host
    if args.port is not None:
        overrides["http_port"] = args.port
    if overrides:
        settings = dataclasses.replace(settings, **overrides)
    setup(settings)
    try:
        return run_async(lambda: serve(settings, args.create_app))
    except Exception as exc:
        if settings.log_level == "debug":
            raise
        print(f"lrs serve: {explain(exc)}", file=sys.stderr, flush=True)
        return 2 if isinstance(exc, ConfigError) else 1


def _stop_event() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in stop_signals():
        loop.add_signal_handler(sig, stop.set)
    return stop


def bind(host: str, port: int, *, reuse_port: bool) -> list[socket.socket]:
    """Sockets bound (not yet listening) to every address of ``host``: the
    port is ours from here on, and clients are refused until we listen."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise cannot_listen(host, port, exc) from exc
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
    except OSError as exc:
        for sock in sockets:
            sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise port_in_use(host, port) from exc
        raise cannot_listen(host, port, exc) from exc
    return sockets


async def serve(settings: Settings, create_app: AppFactory) -> int:
    from lrs.runtime.embedded import embedded_runtime
    from lrs.runtime.workers import is_worker, supervise

    worker = is_worker()
    supervisor = settings.http_workers > 1
    if settings.seal_personal_data:
        # Checked before anything starts (ConfigError: one line); the workers,
        # the relay and the projector use the key file resolved here.
        os.environ["LRS_PRIVACY_KEY_FILE"] = str(settings.privacy_master_key_file)
    sockets = bind(settings.http_host, settings.http_port, reuse_port=worker or supervisor)
    try:
        if supervisor:
            for sock in sockets:  # only checked: the workers bind the port themselves
                sock.close()
            sockets = []
        async with embedded_runtime(settings, supervise=True) as embedded:
            if supervisor:
                return await supervise(
                    workers=settings.http_workers, database_url=embedded.database_url, nats_url=embedded.nats_url,
                    relay=settings.relay_enabled, stop=_stop_event(), grace_s=settings.shutdown_grace_s,
                )
            app = create_app(settings, database_url=embedded.database_url, nats_url=embedded.nats_url,
                             shared_log=worker, embedded=embedded.status)
            return await _serve_app(app, settings, sockets, worker=worker)
    finally:
        for sock in sockets:
            sock.close()


async def _serve_app(app: web.Application, settings: Settings, sockets: list[socket.socket], *, worker: bool) -> int:
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=settings.shutdown_grace_s)
    stop = _stop_event()
    try:
        # Startup (pool, migrations, writer, relay, projection) races the
        # signals: a SIGTERM while a server is still starting stops cleanly.
        setting_up = asyncio.ensure_future(runner.setup())
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait({setting_up, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not setting_up.done():
            setting_up.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await setting_up
            return 0
        stopping.cancel()
        setting_up.result()
        for sock in sockets:
            await web.SockSite(runner, sock, backlog=1024).start()
        settle_heap()
        log.info("listening", host=settings.http_host, port=settings.http_port, embedded=settings.embedded,
                 worker=worker)
        await stop.wait()
        log.info("shutting down", grace_s=settings.shutdown_grace_s)
        return 0
    finally:
        # Stops listening, lets in-flight requests finish (their statements are
        # committed before they are answered), then closes writer, relay and pool;
        # after a failed start, closes whatever had started.
        await runner.cleanup()
        log.info("stopped")
