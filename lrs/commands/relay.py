"""``lrs relay``: run the relay from the event log to JetStream on its own."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from typing import TYPE_CHECKING, AsyncIterator

import structlog

from lrs.cli_arguments import at_least_one
from lrs.commands.common import (
    database_url, load_settings, reaching_database, run_async, settle_heap, setup, stop_signals,
)
from lrs.config import Settings

if TYPE_CHECKING:
    from lrs.nats.bus import Bus

log = structlog.get_logger("lrs.relay")

# How long `lrs relay --until-caught-up` waits for a NATS server that is away
# (at its start or later) before it gives up with one line (docs/operations.md);
# the long-running relay waits for as long as it takes.
RELAY_NATS_WAIT_S = 5.0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "relay",
        help="publish the event log to NATS JetStream",
        description=(
            "Publish the event log from PostgreSQL (LRS_DATABASE_URL) to the LRS_EVENTS stream on "
            "NATS JetStream (LRS_NATS_URL), creating the stream from schemas/nats/ when it is missing "
            "(changing an existing stream is an admin's: --apply-stream). "
            "Resumes after its checkpoint and repairs a stream that lost messages. Several relays "
            "may run: one publishes, the others wait on a Postgres lock and take over if it stops. "
            "`lrs serve` runs a relay too unless LRS_RELAY_ENABLED=false."
        ),
    )
    parser.add_argument("--name", default="jetstream", help="checkpoint and leader-lock name (default: jetstream)")
    parser.add_argument(
        "--batch-size", type=at_least_one, help="events per publish batch (default: LRS_RELAY_BATCH_SIZE or 1000)"
    )
    parser.add_argument(
        "--poll-interval",
        type=float,
        default=0.5,
        help="seconds between looks at the log when no commit notification arrives (writers announce "
        "their commits with NOTIFY lrs_log; default: 0.5)",
    )
    parser.add_argument(
        "--until-caught-up",
        action="store_true",
        help="exit once the stream holds every event committed so far, instead of running until stopped; "
        f"exit 1 when NATS stays unreachable for {RELAY_NATS_WAIT_S:g} s",
    )
    parser.add_argument(
        "--apply-stream",
        action="store_true",
        help="create or update the LRS_EVENTS stream from its definition (LRS_NATS_STREAM_REPLICAS copies) and "
        "exit; LRS_NATS_URL must name a user allowed to change streams (the relay's own user is not: "
        "docs/trust.md)",
    )
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    if args.poll_interval <= 0:
        raise SystemExit("lrs relay: --poll-interval must be positive")
    settings = load_settings()
    if args.apply_stream:
        setup(settings, one_shot=True)  # its connection's info lines (bus.connected, ...) only with LRS_LOG_LEVEL
        return run_async(lambda: _apply_stream(settings))
    setup(settings)
    run_async(lambda: relay(settings, args))
    return 0


async def _apply_stream(settings: Settings) -> int:
    from lrs.runtime.nats import EmbeddedNats, ensure_events_stream

    url = settings.nats_url or EmbeddedNats(settings.data_dir / "nats").url  # the embedded server's admin
    try:
        await ensure_events_stream(url, settings.nats_stream_replicas)
    except Exception as exc:  # noqa: BLE001 - one line for the operator
        print(f"lrs relay --apply-stream: {type(exc).__name__}: {exc} (LRS_NATS_URL must name a user allowed to "
              "change streams, such as admin)", file=sys.stderr)
        return 1
    replicas = settings.nats_stream_replicas
    print(f"the LRS_EVENTS stream matches its definition ({replicas} {'copy' if replicas == 1 else 'copies'})")
    return 0


async def relay(settings: Settings, args: argparse.Namespace) -> None:
    from lrs.relay import Relay
    from lrs.store.commit_notifications import commit_notifications
    from lrs.store.migrations import apply_migrations
    from lrs.store.pool import close_pool, create_pool

    async with database_url(settings) as db_url, _nats_url(settings) as nats_url:
        with reaching_database(db_url):
            pool = await create_pool(db_url, min_size=1, max_size=2, application_name="lrs-relay")
        try:
            await apply_migrations(pool, also=args.migrations)
            relay = Relay(
                pool,
                nats_url,
                name=args.name,
                batch_size=args.batch_size or settings.relay_batch_size,
                poll_interval=args.poll_interval,
                inline_max_bytes=settings.relay_inline_max_bytes,
                stream_replicas=settings.nats_stream_replicas,
            )
            anchoring = None
            if not args.until_caught_up and (settings.anchor_every_events or settings.anchor_every_s):
                from lrs.anchor_writer import AnchorWriter

                anchoring = AnchorWriter(
                    pool, settings.signing_key_file, settings.anchor_log_file,
                    every_events=settings.anchor_every_events, every_s=settings.anchor_every_s,
                )
                relay.read_hooks.append(anchoring.observe)  # checked as the relay reads them, not read again
                await anchoring.start()

            def committed(position: int | None = None) -> None:
                relay.notify(position)
                if anchoring is not None:
                    anchoring.notify(position)

            # Writers in other processes announce their commits (lrs.store.commit_notifications).
            async with commit_notifications(db_url, committed):
                running = asyncio.create_task(relay.run(until_caught_up=args.until_caught_up))
                watching = None
                if args.until_caught_up:
                    relay.bus.error_level = "debug"  # the one line below says it
                    watching = asyncio.create_task(_while_nats_answers(relay.bus, RELAY_NATS_WAIT_S))
                settle_heap()
                loop = asyncio.get_running_loop()
                for sig in stop_signals():
                    loop.add_signal_handler(sig, running.cancel)
                try:
                    if watching is not None:
                        await asyncio.wait({running, watching}, return_when=asyncio.FIRST_COMPLETED)
                        if watching.done():
                            running.cancel()
                            with contextlib.suppress(asyncio.CancelledError):
                                await running
                            watching.result()  # raises: NATS stayed away
                    await running
                    log.info("relay.finished", relay=args.name, position=relay.published_position)
                except asyncio.CancelledError:
                    log.info("relay.stopped", relay=args.name, position=relay.published_position)
                finally:
                    if watching is not None:
                        watching.cancel()
                    for sig in stop_signals():
                        loop.remove_signal_handler(sig)
                    await relay.stop()
                    if anchoring is not None:
                        await anchoring.stop()
        finally:
            await close_pool(pool)


async def _while_nats_answers(bus: Bus, wait_s: float) -> None:
    """Returns never while ``bus`` connects within ``wait_s`` of its start and
    of every loss; raises :func:`lrs.startup.nats_unreachable` otherwise."""
    from lrs.startup import nats_unreachable

    while True:
        if not await bus.wait_connected(wait_s):
            raise nats_unreachable(bus.url, wait_s, bus.last_error)
        await asyncio.sleep(0.2)
        while bus.connected:
            await asyncio.sleep(0.2)


@contextlib.asynccontextmanager
async def _nats_url(settings: Settings) -> AsyncIterator[str]:
    """LRS_NATS_URL; else the embedded nats-server of a running `lrs serve`; else
    the embedded server started here for as long as the relay runs."""
    if settings.nats_url:
        yield settings.nats_url
        return
    from lrs.runtime.nats import HOST, EmbeddedNats, ensure_events_stream

    server = EmbeddedNats(settings.data_dir / "nats")
    if (server.data_dir / "port").exists() and await _serves_nats(HOST, server.port):
        yield server.url_for("relay")
        return
    async with server:
        await ensure_events_stream(server.url, settings.nats_stream_replicas)  # as admin: the relay may not change it
        yield server.url_for("relay")


async def _serves_nats(host: str, port: int) -> bool:
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 2)
    except (OSError, asyncio.TimeoutError):
        return False
    try:
        greeting = await asyncio.wait_for(reader.readline(), 2)
    except (OSError, asyncio.TimeoutError):
        greeting = b""
    finally:
        writer.close()
    return greeting.startswith(b"INFO ")
