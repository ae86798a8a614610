"""The bus's log lines never carry the NATS password of its URL."""

from __future__ import annotations

import asyncio
import time

from structlog.testing import capture_logs

from lrs.nats.bus import Bus


class _Disconnected:
    is_connected = False

    async def close(self) -> None:
        return None


async def test_replacing_a_stalled_client_logs_the_url_without_its_password() -> None:
    bus = Bus("nats://service:s3cret-pw@127.0.0.1:1")
    bus._nc = _Disconnected()  # type: ignore[assignment]
    bus._disconnected_since = time.monotonic() - 60
    with capture_logs() as logs:
        assert await bus.replace_stalled_client(1.0)
        if bus._replacing is not None:
            bus._replacing.cancel()
            await asyncio.gather(bus._replacing, return_exceptions=True)
    replaced = [entry for entry in logs if entry["event"] == "bus.client_replaced"]
    assert replaced and "s3cret-pw" not in repr(replaced)
    assert replaced[0]["url"] == "nats://service:***@127.0.0.1:1"
