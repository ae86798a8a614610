"""The test servers work, and a nats-server restart keeps JetStream data."""

from __future__ import annotations

import asyncpg
import nats
from nats.js.api import StorageType, StreamConfig

from lrs.runtime.nats import EmbeddedNats


async def test_database_is_fresh_and_usable(database_url: str, postgres_server: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SELECT 1") == 1
        assert await conn.fetchval("SELECT current_database()") != await _current_database(postgres_server)
        tables = await conn.fetchval(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        )
        assert tables == 0
    finally:
        await conn.close()


async def _current_database(url: str) -> str:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval("SELECT current_database()")
    finally:
        await conn.close()


async def _publish_and_read(url: str, stream: str, payloads: list[bytes]) -> list[bytes]:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        await js.add_stream(StreamConfig(name=stream, subjects=[f"{stream}.>"], storage=StorageType.FILE))
        for payload in payloads:
            await js.publish(f"{stream}.x", payload)
        return await _read_all(nc, stream)
    finally:
        await nc.close()


async def _read_all(nc: nats.NATS, stream: str) -> list[bytes]:
    js = nc.jetstream()
    info = await js.stream_info(stream)
    return [(await js.get_msg(stream, seq)).data for seq in range(1, info.state.last_seq + 1)]


async def test_jetstream_round_trip(nats_url: str) -> None:
    payloads = [b"one", b"two", b"three"]
    assert await _publish_and_read(nats_url, "RUNTIME_SMOKE", payloads) == payloads


async def test_jetstream_data_survives_stop_and_kill(nats_control: EmbeddedNats) -> None:
    url = nats_control.url
    await _publish_and_read(url, "PERSIST", [b"a", b"b"])

    await nats_control.stop()
    assert not nats_control.running
    await nats_control.start()
    assert nats_control.url == url

    nc = await nats.connect(url)
    try:
        assert await _read_all(nc, "PERSIST") == [b"a", b"b"]
        ack = await nc.jetstream().publish("PERSIST.x", b"c")
        assert ack.seq == 3
        await nc.flush()
    finally:
        await nc.close()

    nats_control.kill()
    await nats_control.start()
    assert nats_control.url == url

    nc = await nats.connect(url)
    try:
        # A crash may lose the last acknowledged writes (they can still be in
        # the server's write buffer); what the graceful stop flushed is kept.
        assert (await _read_all(nc, "PERSIST"))[:2] == [b"a", b"b"]
    finally:
        await nc.close()
