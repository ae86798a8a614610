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
    loop = asyncio.get_running_loop()
    lost: list[float] = []  # loop time of each call: before the first attempt, then after each failed one
    tried = asyncio.Event()
    delays = [0.01, 0.02, 0.04, 0.08, 0.08]  # retry_s doubling up to retry_max_s

    def on_lost() -> None:
        lost.append(loop.time())
        if len(lost) == len(delays) + 2:
            tried.set()

    with capture_logs() as logged:
        async with listening(url, "lrs_test", on_notification=lambda _p: None, on_lost=on_lost,
                             retry_s=0.01, retry_max_s=0.08, startup_timeout_s=0.0, application_name="lrs-test"):
            await asyncio.wait_for(tried.wait(), 60)
    # Each attempt waits its backoff after the failure before it: however slow the
    # machine, never less (a fixed 0.01 s retry would make gaps of about 0.01 s).
    failed_at = lost[1:len(delays) + 2]
    gaps = [later - earlier for earlier, later in zip(failed_at, failed_at[1:])]
    assert all(gap >= delay - 0.001 for gap, delay in zip(gaps, delays, strict=True)), gaps
    assert [e["event"] for e in logged if e.get("channel") == "lrs_test"] == ["listener.unavailable"]


async def test_a_listening_connection_that_stops_answering_is_given_up_and_opened_again(database_url: str) -> None:
    """A network cut (the database host gone quiet, no reset) ends no
    connection by itself (asyncpg sets no TCP keepalive): the listener asks
    the connection every ``check_every_s`` and gives it up when it does not
    answer within ``check_timeout_s``, so the caller stops trusting its
    cache and a new connection listens once the host answers again."""
    from tests.integration.test_writer_close_unreachable import SilencingProxy

    proxy = SilencingProxy(database_url)
    await proxy.start()
    events: list[str] = []
    try:
        async with listening(proxy.url, "lrs_test", on_notification=lambda _p: None,
                             on_lost=lambda: events.append("lost"), on_listening=lambda: events.append("listening"),
                             retry_s=0.05, retry_max_s=0.2, check_every_s=0.2, check_timeout_s=0.5,
                             application_name="lrs-test-silenced"):
            assert events == ["lost", "listening"]
            proxy.silence()
            for _ in range(100):  # before: never heard (the 10 s here, or TCP's hours)
                if events[-1] == "lost":
                    break
                await asyncio.sleep(0.1)
            assert events[2:3] == ["lost"]
            proxy.speak()
            for _ in range(100):
                if events[-1] == "listening":
                    break
                await asyncio.sleep(0.1)
            assert events[-1] == "listening"
    finally:
        await proxy.close()
