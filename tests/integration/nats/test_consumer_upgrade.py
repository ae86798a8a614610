"""A projection's durable consumer made by an earlier build (max_ack_pending
1,000) takes the template's settings when the runner starts again: the
runner's batches grow to the template's max_ack_pending, and a consumer that
kept the old bound would stall each fetch at it."""

from __future__ import annotations

import asyncio
import uuid

import nats
import nats.js.errors

from lrs.nats.bus import STREAM_NAME, load_consumer_config
from projections.jetstream_loop import _ensure_consumer


async def test_an_existing_projection_consumer_takes_the_templates_max_ack_pending(nats_url: str) -> None:
    template = load_consumer_config()
    assert template.max_ack_pending == 5000
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    made_stream = False
    durable = "upgrade_" + uuid.uuid4().hex[:8]
    try:
        try:
            await js.stream_info(STREAM_NAME)
        except nats.js.errors.NotFoundError:
            await js.add_stream(name=STREAM_NAME, subjects=["lrs.events.>"])
            made_stream = True
        # as a build before this one made it
        await js.add_consumer(STREAM_NAME, load_consumer_config(durable_name=durable).evolve(max_ack_pending=1000))
        assert (await js.consumer_info(STREAM_NAME, durable)).config.max_ack_pending == 1000
        await asyncio.wait_for(_ensure_consumer("competency", js, durable, asyncio.Event()), timeout=10)
        assert (await js.consumer_info(STREAM_NAME, durable)).config.max_ack_pending == template.max_ack_pending
    finally:
        try:
            await js.delete_consumer(STREAM_NAME, durable)
        finally:
            if made_stream:
                await js.delete_stream(STREAM_NAME)
            await nc.close()
