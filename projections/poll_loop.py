"""Delivery from the PostgreSQL log itself, for a deployment without NATS:
catch up whenever the writer commits (or every few seconds)."""

from __future__ import annotations

import asyncio
from typing import Callable

import structlog

from lrs.store.log_reader import read_events_after
from projections.applying import TRANSIENT_ERRORS, BatchApplier, BatchOutcome
from projections.events import log_events
from projections.leader import WhileLeading, leading, sleep_or_stop

__all__ = ["catch_up", "follow"]

log = structlog.get_logger("lrs.projections")


async def catch_up(applier: BatchApplier, batch_size: int = 1000) -> int:
    """Apply everything in the Postgres log (no NATS); returns the checkpoint."""
    while True:
        async with applier.pool.acquire() as conn:
            async with conn.transaction():
                checkpoint = await applier.checkpoints.lock(conn)
            records = await read_events_after(conn, checkpoint, batch_size)
        if not records:
            return checkpoint
        outcome = await applier.apply_batch(log_events(records))
        if outcome.failed_at is not None:
            return outcome.checkpoint


async def follow(
    applier: BatchApplier,
    stop: asyncio.Event,
    wake: asyncio.Event,
    *,
    batch_size: int = 1000,
    poll_interval: float = 1.0,
    on_batch: Callable[[BatchOutcome], None] | None = None,
    while_leading: WhileLeading | None = None,
) -> None:
    """Catch up whenever ``wake`` is set (the writer's commit hook) or every
    ``poll_interval`` seconds, until ``stop`` is set; one process at a time
    (which runs ``while_leading`` as long as it leads)."""
    async with leading(applier.pool, f"projection:{applier.name}", stop, retry_every=poll_interval) as lock_conn:
        if lock_conn is None:
            return
        stop_leading = while_leading(lock_conn) if while_leading is not None else None
        try:
            await _follow(applier, stop, wake, batch_size, poll_interval, on_batch)
        finally:
            if stop_leading is not None:
                await stop_leading()


async def _follow(
    applier: BatchApplier,
    stop: asyncio.Event,
    wake: asyncio.Event,
    batch_size: int,
    poll_interval: float,
    on_batch: Callable[[BatchOutcome], None] | None,
) -> None:
    while not stop.is_set():
        wake.clear()
        try:
            checkpoint = await catch_up(applier, batch_size)
        except TRANSIENT_ERRORS as exc:
            log.warning("projection.catch_up_failed", projection=applier.name, error=repr(exc))
        else:
            if on_batch is not None:
                on_batch(BatchOutcome(checkpoint, 0, (), None))
            # An event that failed waits its retry_delay, and nothing after it
            # can be applied before it: commits (wake) are no reason to read the log.
            retry_in = applier.retry_wait(checkpoint)
            if retry_in > 0:
                await sleep_or_stop(stop, retry_in)
                continue
        waiter = asyncio.ensure_future(wake.wait())
        stopper = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({waiter, stopper}, timeout=poll_interval, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            stopper.cancel()
