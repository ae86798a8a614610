"""``lrs serve``: run the LRS HTTP service (and the relay to JetStream)."""

from __future__ import annotations

import argparse
import dataclasses
import asyncio
import signal
import sys

import structlog
from aiohttp import web

from lrs.commands.common import load_settings, run_async, settle_heap, setup
from lrs.config import ConfigError, Settings

log = structlog.get_logger("lrs.serve")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="run the xAPI service",
        description=(
            "Run the xAPI HTTP service. Configuration comes from LRS_* environment variables "
            "(see README). Without LRS_DATABASE_URL / LRS_NATS_URL it starts a private "
            "PostgreSQL and nats-server under LRS_DATA_DIR and stops them on exit."
        ),
    )
    parser.add_argument("--host", help="listen address (default: LRS_HTTP_HOST or 127.0.0.1)")
    parser.add_argument("--port", type=int, help="listen port (default: LRS_HTTP_PORT or 8080)")
    parser.set_defaults(handler=_run)


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
        return run_async(lambda: serve(settings))
    except ConfigError as exc:  # found at start, e.g. an unreadable LRS_OIDC_JWKS_FILE
        print(f"lrs: configuration error: {exc}", file=sys.stderr)
        return 2


def _stop_event() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def serve(settings: Settings) -> int:
    from lrs.http.app import create_app
    from lrs.runtime.embedded import embedded_services
    from lrs.runtime.workers import is_worker, supervise

    async with embedded_services(settings) as (database_url, nats_url):
        if settings.http_workers > 1:
            return await supervise(
                workers=settings.http_workers, database_url=database_url, nats_url=nats_url,
                relay=settings.relay_enabled, stop=_stop_event(), grace_s=settings.shutdown_grace_s,
            )
        worker = is_worker()
        app = create_app(settings, database_url=database_url, nats_url=nats_url, shared_log=worker)
        runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=settings.shutdown_grace_s
        )
        await runner.setup()
        site = web.TCPSite(runner, settings.http_host, settings.http_port, backlog=1024, reuse_port=worker)
        await site.start()
        settle_heap()
        log.info("listening", host=settings.http_host, port=settings.http_port, embedded=settings.embedded,
                 worker=worker)
        stop = _stop_event()
        await stop.wait()
        log.info("shutting down", grace_s=settings.shutdown_grace_s)
        # Stops listening, lets in-flight requests finish (their statements are
        # committed before they are answered), then closes writer, relay and pool.
        await runner.cleanup()
        log.info("stopped")
        return 0
