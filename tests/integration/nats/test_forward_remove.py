"""``lrs forward remove`` on a real nats-server and PostgreSQL: it deletes a
forwarder's durable consumer (as the NATS admin user, the only one allowed
to: lrs.nats.permissions) and its checkpoint row, and nothing else."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import asyncpg
import nats
import nats.js.errors
import pytest
from nats.js import api

from connectors.forward.definitions import consumer_config
from lrs.nats.permissions import EVENTS_STREAM
from lrs.runtime.nats import EmbeddedNats, ensure_events_stream


async def _remove(*args: str, data_dir: Path) -> tuple[int, str, str]:
    env = {key: value for key, value in os.environ.items() if key not in ("LRS_NATS_URL", "LRS_DATABASE_URL")}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "lrs", "forward", "remove", *args, env={**env, "LRS_DATA_DIR": str(data_dir)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode or 0, out.decode(), err.decode()


async def test_remove_deletes_a_forwarders_consumer_and_checkpoint_only(
    tmp_path: Path, pool: asyncpg.Pool, database_url: str  # pool: the database is migrated
) -> None:
    async with EmbeddedNats(tmp_path / "nats") as server:
        await ensure_events_stream(server.url)
        admin = await nats.connect(server.url)
        js = admin.jetstream()
        connection = await asyncpg.connect(database_url)
        try:
            await js.add_consumer(EVENTS_STREAM, consumer_config("given-up"))
            await js.add_consumer(EVENTS_STREAM, consumer_config("kept"))
            await js.add_consumer(EVENTS_STREAM, api.ConsumerConfig(
                durable_name="projection-competency", ack_policy=api.AckPolicy.EXPLICIT))
            await js.add_consumer(EVENTS_STREAM, api.ConsumerConfig(
                durable_name="audit-tool", ack_policy=api.AckPolicy.EXPLICIT, filter_subject="lrs.events.>"))
            await connection.execute("INSERT INTO forward_checkpoints (name, position) VALUES ('given-up', 7), "
                                     "('kept', 9)")
            db = ("--database-url", database_url)

            status, out, err = await _remove("--name", "projection-competency", *db, data_dir=tmp_path)
            assert (status, out) == (2, "") and "projection's consumer" in err and len(err.splitlines()) == 1
            status, out, err = await _remove("--name", "audit-tool", *db, data_dir=tmp_path)
            assert (status, out) == (2, "") and "not a forwarder's" in err and len(err.splitlines()) == 1
            status, out, err = await _remove("--name", "never-was", *db, data_dir=tmp_path)
            assert (status, out) == (1, "") and "no forwarder 'never-was'" in err and len(err.splitlines()) == 1

            # No --nats-url: the embedded server's admin user, from LRS_DATA_DIR/nats/auth.json.
            status, out, err = await _remove("--name", "given-up", *db, data_dir=tmp_path)
            assert status == 0, err
            assert out == (f"removed forwarder given-up: consumer given-up of {EVENTS_STREAM} "
                           "(0 statements pending) and checkpoint given-up\n")
            with pytest.raises(nats.js.errors.NotFoundError):
                await js.consumer_info(EVENTS_STREAM, "given-up")
            names = {info.name for info in await js.consumers_info(EVENTS_STREAM)}
            assert names == {"kept", "projection-competency", "audit-tool"}
            rows = await connection.fetch("SELECT name FROM forward_checkpoints ORDER BY name")
            assert [row["name"] for row in rows] == ["kept"]
        finally:
            await connection.close()
            await admin.close()
