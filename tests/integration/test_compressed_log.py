"""A log written partly before payload compression and partly after: the
chain, the signed anchors, the export and a replay see the canonical JSON,
whatever form each row keeps (lrs/payload_codec.py)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import asyncpg
import pytest

import lrs.store.group_columns as group_columns_module
from lrs.payload_codec import MAGIC, open_payload
from lrs.store import StatementWriter
from tests.integration.competency_statements import COURSE, PASSED, course_statement, write

MODULES = ["device-security", "personal-data", "searching"]


async def lrs(env: dict[str, str], *args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "lrs", *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await process.communicate()
    return process.returncode, out.decode()


async def raw_rows(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    return await pool.fetch("SELECT position, payload FROM events ORDER BY position")


async def test_a_log_of_both_forms_verifies_anchors_exports_and_replays_exactly(
    pool: asyncpg.Pool, writer: StatementWriter, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {**os.environ, "LRS_DATABASE_URL": database_url, "LRS_DATA_DIR": str(tmp_path), "LRS_LOG_LEVEL": "warning"}
    statements = [course_statement(n % 4, MODULES[n % 3], PASSED, n, score=0.8 + n / 100) for n in range(16)]
    with monkeypatch.context() as before_compression:  # what an older version wrote
        before_compression.setattr(group_columns_module, "store_payloads", lambda payloads: payloads)
        await write(writer, *statements[:8])
    await write(writer, *statements[8:])

    rows = await raw_rows(pool)
    assert [bytes(r["payload"])[:1] for r in rows[:8]] == [b"{"] * 8
    assert [bytes(r["payload"])[:4] for r in rows[8:]] == [MAGIC] * 8
    canonical = [open_payload(r["payload"]) for r in rows]
    assert sum(len(r["payload"]) for r in rows[8:]) < sum(map(len, canonical[8:])) * 0.6
    assert [json.loads(c)["id"] for c in canonical] == [s["id"] for s in statements]

    status, out = await lrs(env, "audit", "anchor")
    assert status == 0, out
    status, keys = await lrs(env, "audit", "public-key")
    assert status == 0, keys
    (tmp_path / "keys.pem").write_text(keys)
    status, out = await lrs(env, "audit", "verify", "--anchors", str(tmp_path / "anchors.jsonl"),
                            "--public-key", str(tmp_path / "keys.pem"))
    assert status == 0 and "hash chain intact through position 16" in out and "matches all 1 signed anchors" in out, out

    status, out = await lrs(env, "export", "--output", str(tmp_path / "export.jsonl"), "--no-progress")
    assert status == 0, out
    assert (tmp_path / "export.jsonl").read_bytes().splitlines() == canonical  # exactly as stored, in order

    status, out = await lrs(env, "replay", "competency")
    assert status == 0, out
    replayed = out.strip().splitlines()[-1]
    assert replayed.startswith("replayed competency through position 16; digest ")
    learners = await pool.fetchval("SELECT count(*) FROM competency_learners")
    assert learners == 4

    # The same log with every row kept as JSON: same chain, same anchors, same state.
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("ALTER TABLE events DISABLE TRIGGER events_append_only")
        for row, payload in zip(rows, canonical):
            await conn.execute("UPDATE events SET payload = $2 WHERE position = $1", row["position"], payload)
        await conn.execute("ALTER TABLE events ENABLE TRIGGER events_append_only")
    finally:
        await conn.close()
    assert all(bytes(r["payload"])[:1] == b"{" for r in await raw_rows(pool))
    status, out = await lrs(env, "audit", "verify", "--anchors", str(tmp_path / "anchors.jsonl"),
                            "--public-key", str(tmp_path / "keys.pem"))
    assert status == 0 and "matches all 1 signed anchors" in out, out
    status, out = await lrs(env, "replay", "competency")
    assert status == 0 and out.strip().splitlines()[-1] == replayed, out
    assert COURSE in canonical[0].decode()
