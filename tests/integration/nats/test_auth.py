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

from lrs.nats.access import connect_options
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
    url = server.url_for("projection")
    nc = await nats.connect(url, **connect_options(url=url))
    try:
        sub = await nc.jetstream().pull_subscribe("lrs.events.>", durable="projection-competency", stream="LRS_EVENTS")
        [message] = await sub.fetch(1, timeout=5)
        assert message.headers["Lrs-Position"] == "1"
        await message.ack_sync()
        assert (await nc.jetstream().consumer_info("LRS_EVENTS", "projection-competency")).num_ack_pending == 0
    finally:
        await nc.close()


async def test_the_forward_role_runs_a_forwarders_calls(server: EmbeddedNats) -> None:
    from connectors.forward.definitions import DEAD_LETTER_STREAM, EVENTS_STREAM, consumer_config
    from connectors.forward.connection import connect, ensure_dead_letter_stream

    bus = Bus(server.url_for("relay"))
    await bus.connect()
    try:
        await bus.ensure_stream()
    finally:
        await bus.close()
    nc = await connect(server.url_for("forward"), "forward", keep_trying=False)
    try:
        js = nc.jetstream()
        await ensure_dead_letter_stream(js)
        await js.add_consumer(EVENTS_STREAM, consumer_config("forward", "all"))
        # After the consumer: the stream keeps a message only for the consumers it has (interest retention).
        admin = await nats.connect(server.url)
        await admin.jetstream().publish("lrs.events.default.statement", b"{}", headers={"Lrs-Position": "1"})
        await admin.close()
        sub = await js.pull_subscribe_bind(durable="forward", stream=EVENTS_STREAM)
        [message] = await sub.fetch(1, timeout=5)
        await js.publish("lrs.forward.dlq.forward", message.data, stream=DEAD_LETTER_STREAM)
        await message.ack_sync()  # ack() does not wait: consumer_info could answer before the server took it
        assert (await js.consumer_info(EVENTS_STREAM, "forward")).num_ack_pending == 0
        assert (await js.get_msg(DEAD_LETTER_STREAM, seq=1)).data == b"{}"
    finally:
        await nc.close()


async def _errors_of(url: str, action) -> list[str]:
    """The permission errors the server reports while ``action(nc)`` runs on
    a connection of ``url``'s user (with its own inbox prefix)."""
    errors: list[str] = []

    async def on_error(exc: Exception) -> None:
        errors.append(str(exc))

    nc = await nats.connect(url, error_cb=on_error, allow_reconnect=False, **connect_options(url=url))
    try:
        await action(nc)
        await nc.flush()
        await asyncio.sleep(0.2)
    finally:
        await nc.close()
    return [e for e in errors if "ermissions" in e]


async def _refused(url: str, subject: str) -> bool:
    async def publish(nc: nats.NATS) -> None:
        await nc.publish(subject, b"{}")

    # nats-py reports the subject lower-cased
    return any(subject.lower() in error.lower() for error in await _errors_of(url, publish))


async def _stream_with_consumers(server: EmbeddedNats, *consumers: str) -> None:
    """The events stream with one message and a durable consumer of each
    name, made by the admin."""
    from nats.js import api

    admin = await nats.connect(server.url)
    try:
        js = admin.jetstream()
        await js.add_stream(name="LRS_EVENTS", subjects=["lrs.events.>"])
        await js.publish("lrs.events.default.statement", b"{}", headers={"Lrs-Position": "1"})
        for consumer in consumers:
            await js.add_consumer("LRS_EVENTS", api.ConsumerConfig(durable_name=consumer, ack_policy="explicit"))
    finally:
        await admin.close()


async def _pending(server: EmbeddedNats, consumer: str) -> tuple[int, int]:
    admin = await nats.connect(server.url)
    try:
        info = await admin.jetstream().consumer_info("LRS_EVENTS", consumer)
        return info.num_pending, info.num_ack_pending
    finally:
        await admin.close()


async def _ack_subject(server: EmbeddedNats, consumer: str) -> str:
    """A real acknowledgement subject of ``consumer`` (the message stays unacknowledged)."""
    admin = await nats.connect(server.url)
    try:
        sub = await admin.jetstream().pull_subscribe_bind(durable=consumer, stream="LRS_EVENTS")
        [message] = await sub.fetch(1, timeout=5)
        await message.nak(delay=30)
        return message.reply
    finally:
        await admin.close()


async def test_the_projection_user_cannot_use_a_forwarders_consumer(server: EmbeddedNats) -> None:
    await _stream_with_consumers(server, "crm")
    url = server.url_for("projection")
    for subject in ("$JS.API.CONSUMER.MSG.NEXT.LRS_EVENTS.crm", "$JS.API.CONSUMER.DELETE.LRS_EVENTS.crm",
                    "$JS.API.CONSUMER.CREATE.LRS_EVENTS.crm", "$JS.API.CONSUMER.DURABLE.CREATE.LRS_EVENTS.crm",
                    "$JS.API.CONSUMER.CREATE.LRS_EVENTS.crm.lrs.events.>", "$JS.API.CONSUMER.INFO.LRS_EVENTS.crm",
                    "$JS.API.CONSUMER.CREATE.LRS_EVENTS.other", "lrs.events.default.statement",
                    "$JS.API.STREAM.PURGE.LRS_EVENTS", "$JS.API.STREAM.DELETE.LRS_EVENTS"):
        assert await _refused(url, subject), subject
    assert await _pending(server, "crm") == (1, 0)  # nothing was pulled
    ack = await _ack_subject(server, "crm")
    assert await _refused(url, ack), ack
    _, ack_pending = await _pending(server, "crm")
    assert ack_pending == 1  # the forwarder's message is still its own to acknowledge


async def test_the_forward_user_cannot_touch_a_projections_consumer(server: EmbeddedNats) -> None:
    await _stream_with_consumers(server, "projection-competency")
    url = server.url_for("forward")
    for subject in ("$JS.API.CONSUMER.MSG.NEXT.LRS_EVENTS.projection-competency",
                    "$JS.API.CONSUMER.DELETE.LRS_EVENTS.projection-competency",
                    "$JS.API.CONSUMER.CREATE.LRS_EVENTS.projection-competency",
                    "$JS.API.CONSUMER.CREATE.LRS_EVENTS.projection-competency.lrs.events.*.statement",
                    "$JS.API.CONSUMER.DURABLE.CREATE.LRS_EVENTS.projection-competency",
                    "$JS.API.CONSUMER.INFO.LRS_EVENTS.projection-competency",
                    "lrs.events.default.statement", "$JS.API.STREAM.DELETE.LRS_EVENTS"):
        assert await _refused(url, subject), subject
    ack = await _ack_subject(server, "projection-competency")
    assert await _refused(url, ack), ack
    _, ack_pending = await _pending(server, "projection-competency")
    assert ack_pending == 1  # the projection's message is still its own to acknowledge


async def test_the_relay_user_cannot_change_or_delete_the_stream(server: EmbeddedNats) -> None:
    from structlog.testing import capture_logs

    from lrs.nats.bus import load_stream_config

    url = server.url_for("relay")
    bus = Bus(url)
    await bus.connect()
    try:
        await bus.ensure_stream(update=False)  # created from its definition: allowed
        for subject in ("$JS.API.STREAM.UPDATE.LRS_EVENTS", "$JS.API.STREAM.DELETE.LRS_EVENTS",
                        "$JS.API.STREAM.PURGE.LRS_EVENTS", "$JS.API.CONSUMER.DELETE.LRS_EVENTS.projection-competency",
                        "$JS.API.CONSUMER.MSG.NEXT.LRS_EVENTS.projection-competency"):
            assert await _refused(url, subject), subject
        # A stream someone changed: the relay reports the difference and leaves it.
        admin = await nats.connect(server.url)
        await admin.jetstream().update_stream(load_stream_config().evolve(duplicate_window=1.0))
        await admin.close()
        with capture_logs() as logs:
            info = await bus.ensure_stream(update=False)
        assert info.config.duplicate_window == 1.0
        [differs] = [e for e in logs if e["event"] == "bus.stream_differs"]
        assert differs["fields"] == ["duplicate_window"] and differs["alert"] is True
    finally:
        await bus.close()


async def test_no_user_may_subscribe_to_another_users_inbox(server: EmbeddedNats) -> None:
    async def subscribe(subject: str):
        async def action(nc: nats.NATS) -> None:
            await nc.subscribe(subject)
        return action

    for role, other in (("projection", "forward"), ("forward", "service"), ("relay", "projection"),
                        ("service", "forward")):
        url = server.url_for(role)
        for subject in (f"_INBOX.{other}.>", "_INBOX.>", "lrs.events.>", ">"):
            errors = await _errors_of(url, await subscribe(subject))
            assert any("ubscription" in e and subject.lower() in e.lower() for e in errors), (role, subject, errors)
        assert await _errors_of(url, await subscribe(f"_INBOX.{role}.x")) == []


async def test_the_admin_applies_the_stream_definition_with_lrs_relay_apply_stream(server: EmbeddedNats) -> None:
    import os
    import sys

    from lrs.nats.bus import load_stream_config

    admin = await nats.connect(server.url)
    try:
        js = admin.jetstream()
        await js.add_stream(load_stream_config().evolve(duplicate_window=1.0))
        env = {**os.environ, "LRS_NATS_URL": server.url_for("relay"), "LRS_LOG_LEVEL": "warning"}
        refused = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "lrs", "relay", "--apply-stream", env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        await asyncio.wait_for(refused.communicate(), 120)
        assert refused.returncode == 1  # the relay's own user may not change the stream
        assert (await js.stream_info("LRS_EVENTS")).config.duplicate_window == 1.0
        applied = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "lrs", "relay", "--apply-stream", env={**env, "LRS_NATS_URL": server.url},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        out, _ = await asyncio.wait_for(applied.communicate(), 120)
        assert applied.returncode == 0, out.decode()
        info = await js.stream_info("LRS_EVENTS")
        assert info.config.duplicate_window == load_stream_config().duplicate_window
    finally:
        await admin.close()


async def test_lrs_relay_apply_stream_answers_with_one_clean_line(server: EmbeddedNats) -> None:
    import os
    import sys

    env = {key: value for key, value in os.environ.items() if key != "LRS_LOG_LEVEL"}
    applied = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "lrs", "relay", "--apply-stream", env={**env, "LRS_NATS_URL": server.url},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(applied.communicate(), 120)
    assert applied.returncode == 0, err.decode()
    assert out.decode() == "the LRS_EVENTS stream matches its definition (1 copy)\n"
    assert err.decode() == ""  # no connection chatter at the default log level
