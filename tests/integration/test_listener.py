"""The LISTEN connection (lrs.store.listener) while PostgreSQL cannot be
reached: it keeps trying, backing off, and logs the outage once."""

from __future__ import annotations

import asyncio
import socket

from structlog.testing import capture_logs

from lrs.store.listener import listening


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_a_listener_that_cannot_connect_keeps_trying_with_backoff_and_logs_the_outage_once() -> None:
    url = f"postgresql://nobody@127.0.0.1:{_closed_port()}/none"
    lost: list[None] = []
    with capture_logs() as logged:
        async with listening(url, "lrs_test", on_notification=lambda _p: None, on_lost=lambda: lost.append(None),
                             retry_s=0.01, retry_max_s=0.08, startup_timeout_s=0.0, application_name="lrs-test"):
            await asyncio.sleep(0.6)
    # Attempts at 0.01, 0.02, 0.04, then every 0.08 s: some 9 in 0.6 s, not the 60 of a fixed 0.01 s.
    assert 4 <= len(lost) - 1 <= 20
    assert [e["event"] for e in logged if e.get("channel") == "lrs_test"] == ["listener.unavailable"]
