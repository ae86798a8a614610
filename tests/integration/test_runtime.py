"""The test servers and the embedded default: they work, keep data and die with their parent."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

import asyncpg
import nats
import pytest
from nats.js.api import StorageType, StreamConfig

from lrs.config import Settings
from lrs.runtime.embedded import embedded_services
from lrs.runtime.nats import EmbeddedNats
from lrs.runtime.postgres import EmbeddedPostgres, find_bin_dir, wal_compression


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


async def test_the_embedded_server_compresses_full_page_images_in_its_wal(postgres_server: str) -> None:
    conn = await asyncpg.connect(postgres_server)
    try:
        settings = dict(await conn.fetch(
            "SELECT name, setting FROM pg_settings WHERE name IN ('wal_compression', 'full_page_writes')"))
    finally:
        await conn.close()
    assert settings == {"wal_compression": wal_compression(find_bin_dir()), "full_page_writes": "on"}
    assert settings["wal_compression"] in ("lz4", "pglz")


def test_wal_compression_is_lz4_where_the_server_has_it(tmp_path: Path) -> None:
    script = tmp_path / "pg_config"
    script.write_text("#!/bin/sh\necho \"'--prefix=/x' '--with-lz4' '--with-zstd'\"\n")
    script.chmod(0o755)
    assert wal_compression(tmp_path) == "lz4"
    script.write_text("#!/bin/sh\necho \"'--prefix=/x' '--without-readline'\"\n")
    assert wal_compression(tmp_path) == "pglz"
    script.unlink()
    assert wal_compression(tmp_path) == "pglz"


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


# -- the embedded default ------------------------------------------------------


@pytest.fixture
def data_dir() -> Iterator[Path]:
    # Directly under /tmp, as the session's own servers are.
    path = Path(tempfile.mkdtemp(prefix="lrs-test-rt-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


async def test_embedded_services_start_both_and_keep_data_across_restarts(data_dir: Path) -> None:
    settings = Settings(data_dir=data_dir)
    async with embedded_services(settings) as (database_url, nats_url):
        conn = await asyncpg.connect(database_url)
        try:
            assert await conn.fetchval("SELECT current_database()") == "lrs"
            await conn.execute("CREATE TABLE kept (x int); INSERT INTO kept VALUES (42)")
        finally:
            await conn.close()
        # The service's own user may not create other streams: the operator's may.
        admin_url = EmbeddedNats(data_dir / "nats").url
        await _publish_and_read(admin_url, "KEPT", [b"kept"])

    async with embedded_services(settings) as (database_url_again, nats_url_again):
        assert (database_url_again, nats_url_again) == (database_url, nats_url)
        conn = await asyncpg.connect(database_url)
        try:
            assert await conn.fetchval("SELECT x FROM kept") == 42
        finally:
            await conn.close()
        nc = await nats.connect(admin_url)
        try:
            assert await _read_all(nc, "KEPT") == [b"kept"]
        finally:
            await nc.close()


async def test_embedded_services_use_configured_urls(data_dir: Path, database_url: str, nats_url: str) -> None:
    settings = Settings(data_dir=data_dir, database_url=database_url, nats_url=nats_url)
    async with embedded_services(settings) as urls:
        assert urls == (database_url, nats_url)
    assert list(data_dir.iterdir()) == []


async def test_second_postgres_on_a_data_dir_in_use_is_refused(data_dir: Path) -> None:
    async with EmbeddedPostgres(data_dir / "pg", settings={"shared_buffers": "32MB"}) as first:
        with pytest.raises(RuntimeError, match="already running"):
            await EmbeddedPostgres(data_dir / "pg").start()
        conn = await asyncpg.connect(first.url)  # the first one is untouched
        await conn.close()


async def test_long_data_dir_puts_the_socket_under_tmp(data_dir: Path) -> None:
    deep = data_dir / ("d" * 60) / ("e" * 60)
    async with EmbeddedPostgres(deep, settings={"shared_buffers": "32MB"}) as server:
        assert server.socket_dir is not None and not server.socket_dir.is_relative_to(deep)
        conn = await asyncpg.connect(server.url)
        await conn.close()
        socket_dir = server.socket_dir
    assert not socket_dir.exists()


_CRASHING_PARENT = """
import asyncio, json, sys
from pathlib import Path
import asyncpg
from lrs.runtime.nats import EmbeddedNats
from lrs.runtime.postgres import EmbeddedPostgres, find_bin_dir, wal_compression

async def main():
    root = Path(sys.argv[1])
    pg = EmbeddedPostgres(root / "pg", settings={"shared_buffers": "32MB"})
    ns = EmbeddedNats(root / "nats")
    await pg.start()
    await ns.start()
    conn = await asyncpg.connect(pg.url)
    await conn.execute("CREATE TABLE survived (x int); INSERT INTO survived VALUES (7)")
    await conn.close()
    print("PIDS", json.dumps({"postgres": pg.pid, "nats": ns.pid}), flush=True)
    await asyncio.Event().wait()

if sys.argv[2] == "uvloop":
    import uvloop
    uvloop.run(main())
else:
    asyncio.run(main())
"""


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


async def _wait_until_gone(pid: int, timeout_s: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while _running(pid):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def _line_after(stream: asyncio.StreamReader, prefix: bytes) -> bytes:
    while line := await stream.readline():
        if line.startswith(prefix):
            return line[len(prefix):]
    raise AssertionError(f"child exited without printing {prefix!r}")


@pytest.mark.parametrize("event_loop_kind", ["asyncio", "uvloop"])  # `lrs serve` runs on uvloop
async def test_servers_die_with_a_killed_parent_and_restart_cleanly(data_dir: Path, event_loop_kind: str) -> None:
    parent = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _CRASHING_PARENT, str(data_dir), event_loop_kind, stdout=asyncio.subprocess.PIPE
    )
    try:
        pids = json.loads(await asyncio.wait_for(_line_after(parent.stdout, b"PIDS "), timeout=60))
        assert _running(pids["postgres"]) and _running(pids["nats"])
    finally:
        parent.kill()
        await parent.wait()

    assert await _wait_until_gone(pids["postgres"]), "postgres outlived its parent"
    assert await _wait_until_gone(pids["nats"]), "nats-server outlived its parent"

    async with EmbeddedPostgres(data_dir / "pg", settings={"shared_buffers": "32MB"}) as server:
        conn = await asyncpg.connect(server.url)
        try:
            assert await conn.fetchval("SELECT x FROM survived") == 7
        finally:
            await conn.close()


async def test_nats_picks_another_port_when_its_first_choice_is_taken(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import lrs.runtime.nats as nats_module

    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        choices = iter([taken])
        real_free_port = nats_module.free_port
        monkeypatch.setattr(nats_module, "free_port", lambda host: next(choices, None) or real_free_port(host))
        async with EmbeddedNats(data_dir) as server:
            assert server.port != taken
            assert (data_dir / "port").read_text().strip() == str(server.port)
            nc = await nats.connect(server.url)
            await nc.close()


async def test_nats_keeps_a_remembered_port_even_when_taken(data_dir: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        (data_dir / "port").write_text(f"{taken}\n")
        with pytest.raises(RuntimeError, match="address already in use"):
            await EmbeddedNats(data_dir, start_timeout_s=10).start()
