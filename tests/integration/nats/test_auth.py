"""The embedded nats-server refuses anonymous clients and gives each role
only what it needs (lrs.nats.permissions)."""

from __future__ import annotations

import asyncio
import json
import stat
from pathlib import Path

import nats
import nats.errors
import pytest

from lrs.nats.bus import Bus
from lrs.runtime.nats import EmbeddedNats


@pytest.fixture
async def server(tmp_path: Path):
    async with EmbeddedNats(tmp_path / "nats") as embedded:
        yield embedded


async def test_credentials_are_private_and_anonymous_clients_are_refused(server: EmbeddedNats) -> None:
    for path in (server.auth_path, server.config_path):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert set(json.loads(server.auth_path.read_text())) == {"admin", "service", "relay", "projection", "forward"}
    with pytest.raises(nats.errors.Error, match="Authorization Violation"):
        await nats.connect(server.anonymous_url, allow_reconnect=False, max_reconnect_attempts=1, connect_timeout=2)
    wrong = server.url_for("relay").replace(server.passwords["relay"], "guessed")
    with pytest.raises(nats.errors.Error, match="Authorization Violation"):
        await nats.connect(wrong, allow_reconnect=False, max_reconnect_attempts=1, connect_timeout=2)


async def test_passwords_survive_a_restart(server: EmbeddedNats) -> None:
    before = dict(server.passwords)
    await server.stop()
    again = EmbeddedNats(server.data_dir)
    await again.start()
    try:
        assert again.passwords == before
        nc = await nats.connect(again.url_for("projection"))
        await nc.close()
    finally:
        await again.stop()


async def _publish_error(url: str, subject: str) -> str | None:
    """The permissions error the server reports for a publish, or None."""
    errors: list[str] = []

    async def on_error(exc: Exception) -> None:
        errors.append(str(exc))

    nc = await nats.connect(url, error_cb=on_error)
    try:
        await nc.publish(subject, b"{}")
        await nc.flush()
        await asyncio.sleep(0.2)
    finally:
        await nc.close()
    return next((e for e in errors if "ermissions" in e), None)


async def test_only_the_relay_roles_may_publish_events(server: EmbeddedNats) -> None:
    bus = Bus(server.url_for("relay"))
    await bus.connect()
    try:
        await bus.ensure_stream()  # the relay manages the events stream
    finally:
        await bus.close()
    assert await _publish_error(server.url_for("relay"), "lrs.events.default.statement") is None
    assert await _publish_error(server.url_for("service"), "lrs.events.default.statement") is None
    for consumer_role in ("projection", "forward"):
        error = await _publish_error(server.url_for(consumer_role), "lrs.events.default.statement")
        assert error is not None and "lrs.events.default.statement" in error
    # A consumer cannot delete or purge the stream either.
    error = await _publish_error(server.url_for("projection"), "$JS.API.STREAM.PURGE.LRS_EVENTS")
    assert error is not None


async def test_a_consumer_role_reads_the_stream(server: EmbeddedNats) -> None:
    admin = await nats.connect(server.url)
    js = admin.jetstream()
    await js.add_stream(name="LRS_EVENTS", subjects=["lrs.events.>"])
    await js.publish("lrs.events.default.statement", b"{}", headers={"Lrs-Position": "1"})
    await admin.close()
    nc = await nats.connect(server.url_for("projection"))
    try:
        sub = await nc.jetstream().pull_subscribe("lrs.events.>", durable="projection-test", stream="LRS_EVENTS")
        [message] = await sub.fetch(1, timeout=5)
        assert message.headers["Lrs-Position"] == "1"
        await message.ack()
    finally:
        await nc.close()


async def test_the_forward_role_runs_a_forwarders_calls(server: EmbeddedNats) -> None:
    from connectors.forward.definitions import DEAD_LETTER_STREAM, EVENTS_STREAM, consumer_config
    from connectors.forward.forwarder import connect, ensure_dead_letter_stream

    bus = Bus(server.url_for("relay"))
    await bus.connect()
    try:
        await bus.ensure_stream()
    finally:
        await bus.close()
    admin = await nats.connect(server.url)
    await admin.jetstream().publish("lrs.events.default.statement", b"{}", headers={"Lrs-Position": "1"})
    await admin.close()
    nc = await connect(server.url_for("forward"), "forward", keep_trying=False)
    try:
        js = nc.jetstream()
        await ensure_dead_letter_stream(js)
        await js.add_consumer(EVENTS_STREAM, consumer_config("forward", "all"))
        sub = await js.pull_subscribe_bind(durable="forward", stream=EVENTS_STREAM)
        [message] = await sub.fetch(1, timeout=5)
        await js.publish("lrs.forward.dlq.forward", message.data, stream=DEAD_LETTER_STREAM)
        await message.ack_sync()  # ack() does not wait: consumer_info could answer before the server took it
        assert (await js.consumer_info(EVENTS_STREAM, "forward")).num_ack_pending == 0
        assert (await js.get_msg(DEAD_LETTER_STREAM, seq=1)).data == b"{}"
    finally:
        await nc.close()
