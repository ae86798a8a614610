"""Signed anchors catch what the hash chain alone cannot: a superuser who
rewrites a payload and recomputes every later hash and the log head."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from pathlib import Path

import asyncpg
import pytest

from lrs.anchor_writer import AnchorWriter
from lrs.anchors import load_or_create_key, public_keys_path, read_anchors
from lrs.eventlog import record_hash, stored_texts_of
from lrs.ingest.prepare import prepare_statements
from lrs.store import StatementWriter
from lrs.store.log_reader import read_events_after
from lrs.payload_codec import open_payload

AUTHORITY = {"objectType": "Agent", "mbox": "mailto:authority@example.gov.vn"}


async def write(writer: StatementWriter, count: int) -> None:
    for n in range(count):
        body = {"actor": {"mbox": f"mailto:l{n}@example.gov.vn"}, "verb": {"id": "http://adlnet.gov/expapi/verbs/completed"},
                "object": {"id": f"https://mooc.example.gov.vn/units/{n}"}}
        await writer.append("default", prepare_statements([body], version="1.0.3", authority=AUTHORITY, new_id=uuid.uuid4))


async def lrs(env: dict[str, str], *args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "lrs", *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await process.communicate()
    return process.returncode or 0, out.decode()


async def replace_in_payload(conn: asyncpg.Connection, position: int, old: bytes, new: bytes) -> None:
    """Change the JSON of one payload (kept compressed or not), writing it back as JSON."""
    payload = open_payload(await conn.fetchval("SELECT payload FROM events WHERE position = $1", position))
    assert old in payload
    await conn.execute("UPDATE events SET payload = $2 WHERE position = $1", position, payload.replace(old, new))


async def rewrite_history(database_url: str, position: int) -> None:
    """What a database superuser can do: change a payload, recompute every
    later hash (and prev_hash) and the log head, so the chain holds again."""
    conn = await asyncpg.connect(database_url)
    try:
        async with conn.transaction():
            await conn.execute("ALTER TABLE events DISABLE TRIGGER events_append_only")
            await replace_in_payload(conn, position, b"completed", b"mastered")
            assert b"mastered" in open_payload(await conn.fetchval("SELECT payload FROM events WHERE position = $1", position))
            records = await read_events_after(conn, position - 1, 10_000)
            prev = bytes(await conn.fetchval("SELECT hash FROM events WHERE position = $1", position - 1))
            for record in records:
                fixed = record.__class__(**{**{f: getattr(record, f) for f in record.__struct_fields__}, "prev_hash": prev})
                new_hash = record_hash(fixed)
                await conn.execute("UPDATE events SET prev_hash = $2, hash = $3 WHERE position = $1", record.position, prev, new_hash)
                prev = new_hash
            await conn.execute("UPDATE log_head SET hash = $1", prev)
            await conn.execute("ALTER TABLE events ENABLE TRIGGER events_append_only")
    finally:
        await conn.close()


async def test_a_rewritten_history_passes_the_chain_but_not_the_anchors(
    pool: asyncpg.Pool, writer: StatementWriter, database_url: str, tmp_path: Path
) -> None:
    env = {**os.environ, "LRS_DATABASE_URL": database_url, "LRS_DATA_DIR": str(tmp_path), "LRS_LOG_LEVEL": "warning"}
    key_file, anchors_file = tmp_path / "anchor-key.pem", tmp_path / "anchors.jsonl"
    await write(writer, 10)
    assert (await lrs(env, "audit", "anchor"))[0] == 0  # position 10, first key
    assert (key_file.stat().st_mode & 0o777) == 0o600
    await write(writer, 10)
    anchoring = AnchorWriter(pool, key_file, anchors_file)
    assert (await anchoring.anchor_now()).position == 20
    assert await anchoring.anchor_now() is None  # the head is already anchored
    status, out = await lrs(env, "audit", "rotate-key")
    assert status == 0 and "retired" in out
    await write(writer, 10)
    assert (await lrs(env, "audit", "anchor"))[0] == 0  # position 30, second key
    anchors = read_anchors(anchors_file)
    assert [a.position for a in anchors] == [10, 20, 30]
    assert anchors[0].key_id == anchors[1].key_id != anchors[2].key_id

    status, keys = await lrs(env, "audit", "public-key")
    assert status == 0 and keys.count("BEGIN PUBLIC KEY") == 2
    auditor_keys = tmp_path / "auditor-keys.pem"
    auditor_keys.write_text(keys)
    # The verifications only read: each group runs side by side.
    # `--anchors` alone (docs/privacy.md, README) reads the LRS's own anchors file and keys
    with_keys, own = await asyncio.gather(
        lrs(env, "audit", "verify", "--anchors", str(anchors_file), "--public-key", str(auditor_keys)),
        lrs(env, "audit", "verify", "--anchors"))
    for status, out in (with_keys, own):
        assert status == 0, out
        assert "matches all 3 signed anchors" in out

    await rewrite_history(database_url, 15)
    chain, with_keys, own = await asyncio.gather(
        lrs(env, "audit", "verify"),
        lrs(env, "audit", "verify", "--anchors", str(anchors_file), "--public-key", str(auditor_keys)),
        lrs(env, "audit", "verify", "--anchors"))
    status, out = chain
    assert status == 0, out  # the chain alone is fooled
    status, out = with_keys
    assert status == 1, out
    assert "the anchor at position 20" in out
    assert "first position that may have been rewritten: 11" in out
    status, out = own
    assert status == 1 and "the anchor at position 20" in out, out


async def test_altered_anchors_and_unknown_keys_are_reported(
    pool: asyncpg.Pool, writer: StatementWriter, database_url: str, tmp_path: Path
) -> None:
    env = {**os.environ, "LRS_DATABASE_URL": database_url, "LRS_DATA_DIR": str(tmp_path), "LRS_LOG_LEVEL": "warning"}
    anchors_file = tmp_path / "anchors.jsonl"
    await write(writer, 3)
    assert (await lrs(env, "audit", "anchor"))[0] == 0
    line = json.loads(anchors_file.read_text())
    line["position"] = 2  # moved to another position: the signature no longer holds
    anchors_file.write_text(json.dumps(line) + "\n")
    status, out = await lrs(env, "audit", "verify", "--anchors", str(anchors_file))
    assert status == 1 and "anchor at position 2: its signature does not hold" in out

    other = tmp_path / "other"
    other.mkdir()
    load_or_create_key(other / "anchor-key.pem")  # another LRS's relay made its own key
    status, other_key = await lrs({**env, "LRS_DATA_DIR": str(other)}, "audit", "public-key")
    assert status == 0, other_key
    (other / "keys.pem").write_text(other_key)
    status, out = await lrs(env, "audit", "verify", "--anchors", str(anchors_file), "--public-key", str(other / "keys.pem"))
    assert status == 1 and "not among the public keys" in out
    assert public_keys_path(tmp_path / "anchor-key.pem").exists()


async def test_the_writer_anchors_every_n_events(pool: asyncpg.Pool, writer: StatementWriter, tmp_path: Path) -> None:
    anchoring = AnchorWriter(pool, tmp_path / "k.pem", tmp_path / "a.jsonl", every_events=5, every_s=0)
    writer.committed.append(anchoring.notify)
    await anchoring.start()
    try:
        await write(writer, 12)
        for _ in range(100):
            if anchoring.last_position >= 10:
                break
            await asyncio.sleep(0.05)
    finally:
        await anchoring.stop()
    positions = [a.position for a in read_anchors(tmp_path / "a.jsonl")]
    assert positions and positions[-1] >= 10 and positions == sorted(set(positions))


async def test_an_empty_anchors_file_proves_nothing_and_the_unanchored_tail_is_named(
    pool: asyncpg.Pool, writer: StatementWriter, database_url: str, tmp_path: Path
) -> None:
    env = {**os.environ, "LRS_DATABASE_URL": database_url, "LRS_DATA_DIR": str(tmp_path), "LRS_LOG_LEVEL": "warning"}
    anchors_file = tmp_path / "anchors.jsonl"
    await write(writer, 3)
    anchors_file.write_text("")  # emptied, or never written
    load_or_create_key(tmp_path / "anchor-key.pem")  # as the relay's first start does
    status, out = await lrs(env, "audit", "verify", "--anchors", str(anchors_file))
    assert status == 1 and "no signed anchor to check" in out, out

    assert (await lrs(env, "audit", "anchor"))[0] == 0  # position 3
    await write(writer, 2)
    status, out = await lrs(env, "audit", "verify", "--anchors", str(anchors_file))
    assert status == 0, out
    assert "matches all 1 signed anchors (the last at position 3)" in out
    assert "positions 4 to 5 come after the last anchor" in out


async def alter_payload(database_url: str, position: int) -> None:
    """A superuser's change to one payload, leaving the hashes as they were."""
    conn = await asyncpg.connect(database_url)
    try:
        async with conn.transaction():
            await conn.execute("ALTER TABLE events DISABLE TRIGGER events_append_only")
            await replace_in_payload(conn, position, b"completed", b"mastered")
            await conn.execute("ALTER TABLE events ENABLE TRIGGER events_append_only")
    finally:
        await conn.close()


def _metric(name: str) -> float:
    from prometheus_client import REGISTRY

    value = REGISTRY.get_sample_value(name)
    return value if value is not None else 0.0


async def test_the_writer_refuses_to_sign_a_log_rewritten_after_what_it_verified(
    pool: asyncpg.Pool, writer: StatementWriter, database_url: str, tmp_path: Path
) -> None:
    from structlog.testing import capture_logs

    anchoring = AnchorWriter(pool, tmp_path / "k.pem", tmp_path / "a.jsonl")
    await write(writer, 10)
    assert (await anchoring.anchor_now()).position == 10
    await write(writer, 10)
    assert (await anchoring.anchor_now()).position == 20
    assert anchoring.status() == {"anchored_position": 20, "verified_position": 20, "refused": None}
    # Rewritten with every later hash and the head recomputed: the chain
    # holds, but no longer from the hash the writer verified at 20.
    await rewrite_history(database_url, 15)
    await write(writer, 5)
    refusals = _metric("lrs_anchor_refusals_total")
    with capture_logs() as logs:
        assert await anchoring.anchor_now() is None
    assert anchoring.refused is not None and "position 21" in anchoring.refused
    assert [a.position for a in read_anchors(tmp_path / "a.jsonl")] == [10, 20]
    [alert] = [e for e in logs if e["event"] == "anchor.refused"]
    assert alert["alert"] is True and alert["broken_at"] == 21 and alert["log_level"] == "error"
    assert _metric("lrs_anchor_refusals_total") == refusals + 1
    assert _metric("lrs_anchor_refused") == 1
    assert anchoring.status()["refused"] == anchoring.refused
    # A new writer (a restart) starts from the last anchor, whose hash the log no longer has.
    again = AnchorWriter(pool, tmp_path / "k.pem", tmp_path / "a.jsonl")
    assert await again.anchor_now() is None and again.refused is not None and "position 20" in again.refused
    env = {**os.environ, "LRS_DATABASE_URL": database_url, "LRS_DATA_DIR": str(tmp_path), "LRS_LOG_LEVEL": "warning",
           "LRS_ANCHOR_KEY_FILE": str(tmp_path / "k.pem"), "LRS_ANCHORS_FILE": str(tmp_path / "a.jsonl")}
    status, out = await lrs(env, "audit", "anchor")
    assert status == 1 and "not signed: the log does not hold at position 20" in out, out
    assert [a.position for a in read_anchors(tmp_path / "a.jsonl")] == [10, 20]


async def test_the_writer_refuses_an_altered_event_it_has_not_verified_yet(
    pool: asyncpg.Pool, writer: StatementWriter, database_url: str, tmp_path: Path
) -> None:
    anchoring = AnchorWriter(pool, tmp_path / "k.pem", tmp_path / "a.jsonl")
    await write(writer, 5)
    assert (await anchoring.anchor_now()).position == 5
    await write(writer, 5)
    await alter_payload(database_url, 8)
    assert await anchoring.anchor_now() is None
    assert anchoring.refused is not None and "position 8" in anchoring.refused
    assert anchoring.status()["verified_position"] == 5
    assert [a.position for a in read_anchors(tmp_path / "a.jsonl")] == [5]


async def test_events_the_relay_read_are_checked_once_and_anchored_as_read(
    pool: asyncpg.Pool, writer: StatementWriter, database_url: str, tmp_path: Path
) -> None:
    """Beside a relay the writer hashes the batches the relay read instead of
    reading the log again; an anchor then carries the hash as read, so a
    later change to an anchored row shows against it."""
    anchoring = AnchorWriter(pool, tmp_path / "k.pem", tmp_path / "a.jsonl", every_events=0, every_s=0)
    await anchoring.start()
    await write(writer, 8)
    records = await read_events_after(pool, 0, 100)
    anchoring.observe(records[:3])
    # Overlapping batches, as after a relay's resync, with the stored texts
    # the relay formatted for its frames.
    anchoring.observe(records[1:6], stored_texts_of(records[1:6]))
    assert anchoring.status()["verified_position"] == 6
    await alter_payload(database_url, 5)  # after the relay read it
    anchor = await anchoring.anchor_now()
    assert anchor is not None and anchor.position == 6 and anchor.hash == records[5].hash.hex()
    env = {**os.environ, "LRS_DATABASE_URL": database_url, "LRS_DATA_DIR": str(tmp_path), "LRS_LOG_LEVEL": "warning",
           "LRS_ANCHOR_KEY_FILE": str(tmp_path / "k.pem")}
    status, out = await lrs(env, "audit", "verify", "--anchors", str(tmp_path / "a.jsonl"))
    assert status == 1, out  # the altered row breaks the chain at 5, before the anchor at 6
    # A batch that does not chain (read after the change) moves nothing; the
    # next anchor reads the log itself and refuses.
    anchoring.observe(await read_events_after(pool, 6, 100))
    assert anchoring.status()["verified_position"] == 8
    altered = await read_events_after(pool, 0, 100)
    fresh = AnchorWriter(pool, tmp_path / "k2.pem", tmp_path / "b.jsonl", every_events=0, every_s=0)
    await fresh.start()
    fresh.observe(altered)
    assert fresh.status()["verified_position"] == 0
    fresh.observe(altered, stored_texts_of(altered))  # the relay's hook: the texts do not vouch for the rows
    assert fresh.status()["verified_position"] == 0
    assert await fresh.anchor_now() is None and "position 5" in (fresh.refused or "")


async def test_a_changed_stored_time_breaks_the_chain_for_the_relays_hook(
    pool: asyncpg.Pool, writer: StatementWriter, database_url: str, tmp_path: Path
) -> None:
    """The relay formats each row's stored time once and the check hashes
    with that text: a stored time changed in the table is hashed as it now
    reads, so the batch does not chain and nothing past it is signed."""
    anchoring = AnchorWriter(pool, tmp_path / "k.pem", tmp_path / "a.jsonl", every_events=0, every_s=0)
    await anchoring.start()
    await write(writer, 4)
    conn = await asyncpg.connect(database_url)
    try:
        async with conn.transaction():
            await conn.execute("ALTER TABLE events DISABLE TRIGGER events_append_only")
            await conn.execute("UPDATE events SET stored = stored + interval '1 microsecond' WHERE position = 3")
            await conn.execute("ALTER TABLE events ENABLE TRIGGER events_append_only")
    finally:
        await conn.close()
    records = await read_events_after(pool, 0, 100)
    anchoring.observe(records, stored_texts_of(records))
    assert anchoring.status()["verified_position"] == 0
    assert await anchoring.anchor_now() is None and "position 3" in (anchoring.refused or "")
    assert not (tmp_path / "a.jsonl").exists() or read_anchors(tmp_path / "a.jsonl") == []
