"""``lrs_relay_lag_events`` tells the lag as of the scrape, even when the
relay's loop is not running to set it (stuck in a publish or waiting for
NATS while it holds the leader lock): /metrics reads the log head from
PostgreSQL and sets the gauge against the relay's last published position."""

from __future__ import annotations

from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from lrs.http import keys
from lrs.http.metrics import metrics_handler
from lrs.relay import Relay
from tests.integration.test_relay import append, sample


async def test_a_stuck_leader_s_lag_is_read_at_scrape_time(pool, writer) -> None:
    relay = Relay(pool, "nats://127.0.0.1:9", name="stuck-at-scrape")  # never started: its loop sets nothing
    relay.is_leader = True  # it holds the lock; its loop is blocked somewhere
    relay.published_position = 0
    app = web.Application()
    app[keys.POOL] = pool
    app[keys.RELAY] = relay

    async def scrape() -> float:
        await metrics_handler(make_mocked_request("GET", "/metrics", app=app))
        return sample("lrs_relay_lag_events", relay="stuck-at-scrape")

    await append(writer, 3)  # committed without notifying the relay, as another process's commits are
    assert await scrape() == 3
    assert sample("lrs_relay_log_head_position", relay="stuck-at-scrape") == 3
    await append(writer, 2)
    assert await scrape() == 5
    relay.published_position = 4  # the stream acknowledged up to 4
    assert await scrape() == 1
    assert sample("lrs_relay_published_position", relay="stuck-at-scrape") == 4

    relay.is_leader = False  # a standby publishes nothing: its gauges stay as they were
    await append(writer, 1)
    assert await scrape() == 1
