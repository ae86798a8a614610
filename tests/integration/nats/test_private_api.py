"""Canary against a real nats-server: the private nats-py calls the service
makes still do what it relies on (see tests/unit/nats/test_private_api.py)."""

from __future__ import annotations

import asyncio

import nats
import pytest

from lrs.event_contract import OutgoingMessage
from lrs.nats import headers as nats_headers
from lrs.nats.bus import frame_writer, hpub_frame


async def test_frames_written_through_send_command_arrive_as_published(nats_url: str) -> None:
    nc = await nats.connect(nats_url)
    try:
        received: asyncio.Queue = asyncio.Queue()
        sub = await nc.subscribe("canary.frames", cb=received.put)
        await nc.flush()
        send = frame_writer(nc)
        assert send is not None, "frame_writer found no _send_command on a connected client"
        messages = [OutgoingMessage("canary.frames", f"m{i}".encode(), {"Lrs-Position": str(i)}) for i in (1, 2)]
        await send(b"".join(hpub_frame(m) for m in messages))
        await nc.flush()
        got = [await asyncio.wait_for(received.get(), 5) for _ in messages]
        assert [(m.data, m.headers) for m in got] == [(m.data, dict(m.headers)) for m in messages]
        await sub.unsubscribe()
    finally:
        await nc.close()


async def test_received_headers_go_through_the_fast_parse(nats_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    parsed: list[bytes] = []
    original = nats_headers.parse_plain_headers

    def counting(block: bytes) -> dict[str, str] | None:
        parsed.append(block)
        return original(block)

    monkeypatch.setattr(nats_headers, "parse_plain_headers", counting)
    nc = await nats.connect(nats_url)
    try:
        assert nats_headers.use_fast_header_parse(nc) is True
        received: asyncio.Queue = asyncio.Queue()
        await nc.subscribe("canary.headers", cb=received.put)
        await nc.publish("canary.headers", b"x", headers={"Lrs-Position": "9", "Lrs-Tenant": "t"})
        msg = await asyncio.wait_for(received.get(), 5)
        assert msg.headers == {"Lrs-Position": "9", "Lrs-Tenant": "t"}
        assert len(parsed) == 1, "nats-py no longer parses headers through Client._process_headers"
    finally:
        await nc.close()
