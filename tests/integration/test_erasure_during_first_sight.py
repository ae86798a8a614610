"""Erasing a learner while a group commit is making their first key, against
a real PostgreSQL (docs/privacy.md "Erasure and a learner's first key").

The group inserts the key before it takes the log head lock; an erasure
that takes the head lock in between must not miss the key (it is not
committed yet) and then let the group commit the learner's Statement under
it, readable: it waits for the group and destroys the key with the rest.
A learner erased who is named again later gets a new key generation, which
a second erasure destroys."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid

import asyncpg
import pytest

import lrs.store.group_write as group_write
from lrs.privacy import seal
from lrs.privacy.master import MasterKey
from lrs.store import StatementWriter
from lrs.store.erasure import ErasureRefused, erase_learner
from lrs.store.learner_keys import LearnerKeys
from lrs.store.reader import get_statement
from lrs.xapi.errors import ConflictError
from tests.integration.test_keys_in_group_commit import (
    AUTHORITY, TENANT, append_as_the_service_does, append_sealed, naming, seal_made,
)

MBOX = "mailto:hoa@example.com"


async def opened(pool: asyncpg.Pool, keyring: LearnerKeys, statement_id: str) -> bytes:
    [payload] = await keyring.open_payloads(
        TENANT, [await get_statement(pool, TENANT, uuid.UUID(statement_id), voided=False)])
    return payload


async def waiting_on_a_lock(pool: asyncpg.Pool) -> int:
    return await pool.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )


async def test_an_erasure_while_the_group_makes_the_first_key_erases_what_the_group_commits(
    pool: asyncpg.Pool, writer: StatementWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    master = MasterKey(os.urandom(32))
    keyring = LearnerKeys(pool, master)
    proposed, go_on = asyncio.Event(), asyncio.Event()
    original = group_write.keys_taken

    async def keys_taken_then_wait(conn: asyncpg.Connection, requests: list, *since: float) -> dict:
        # The group has inserted the key (not committed) and not yet taken the head lock.
        refused = await original(conn, requests, *since)
        proposed.set()
        await go_on.wait()
        return refused

    monkeypatch.setattr(group_write, "keys_taken", keys_taken_then_wait)
    statements = [naming(MBOX)]
    sealed = await seal_made(keyring, statements)
    assert keyring.pseudonym(TENANT, f"mbox:{MBOX}") in sealed.new_keys
    group = asyncio.create_task(append_sealed(writer, keyring, sealed))
    await asyncio.wait_for(proposed.wait(), 10)
    erasure = asyncio.create_task(erase_learner(
        pool, LearnerKeys(pool, master), TENANT, {"mbox": MBOX}, reason="request 31", by="test"))
    # The erasure either finished without the group (it missed the key) or waits for it.
    for _ in range(500):
        if erasure.done() or await waiting_on_a_lock(pool):
            break
        await asyncio.sleep(0.01)
    go_on.set()
    [result] = await asyncio.wait_for(group, 10)
    assert result.inserted
    erased = await asyncio.wait_for(erasure, 10)  # before the fix: ErasureRefused (nothing of her)
    assert erased.generations == [1]
    # Her Statement, committed by the group, is erased: the key it is sealed under is destroyed.
    payload = await opened(pool, LearnerKeys(pool, master), statements[0]["id"])
    assert b"hoa@example.com" not in payload and seal.ERASED_HOME.encode() in payload
    rows = await pool.fetch("SELECT generation, wrapped IS NULL AS erased FROM learner_keys WHERE pseudonym = $1",
                            keyring.pseudonym(TENANT, f"mbox:{MBOX}"))
    assert [(r["generation"], r["erased"]) for r in rows] == [(1, True)]


async def test_an_erasure_of_a_learner_with_nothing_leaves_no_key_row_and_a_first_key_after_it_is_made(
    pool: asyncpg.Pool, writer: StatementWriter
) -> None:
    master = MasterKey(os.urandom(32))
    with pytest.raises(ErasureRefused) as refused:
        await erase_learner(pool, LearnerKeys(pool, master), TENANT, {"mbox": MBOX}, reason="request 32", by="test")
    assert refused.value.kind == "absent"
    assert await pool.fetchval("SELECT count(*) FROM learner_keys") == 0
    assert await pool.fetchval("SELECT key_epoch FROM log_head") == 0
    keyring = LearnerKeys(pool, master)
    statements = [naming(MBOX)]
    [result] = await append_sealed(writer, keyring, await seal_made(keyring, statements))
    assert result.inserted
    assert MBOX.removeprefix("mailto:").encode() in await opened(pool, LearnerKeys(pool, master), statements[0]["id"])


async def test_a_learner_erased_then_named_again_is_stored_under_a_new_generation_which_a_second_erasure_destroys(
    pool: asyncpg.Pool, writer: StatementWriter
) -> None:
    master = MasterKey(os.urandom(32))
    keyring = LearnerKeys(pool, master)
    before = [naming(MBOX)]
    await append_sealed(writer, keyring, await seal_made(keyring, before))
    await erase_learner(pool, LearnerKeys(pool, master), TENANT, {"mbox": MBOX}, reason="request 33", by="test")
    with pytest.raises(ErasureRefused, match="already erased"):
        await erase_learner(pool, LearnerKeys(pool, master), TENANT, {"mbox": MBOX}, reason="request 34", by="test")
    late = LearnerKeys(pool, master)
    after = [naming(MBOX)]
    await append_as_the_service_does(writer, late, await seal_made(late, after), after)
    reader = LearnerKeys(pool, master)
    assert b"hoa@example.com" not in await opened(pool, reader, before[0]["id"])
    assert b"hoa@example.com" in await opened(pool, reader, after[0]["id"])
    again = await erase_learner(pool, LearnerKeys(pool, master), TENANT, {"mbox": MBOX}, reason="request 35", by="test")
    assert again.generations == [2]
    assert b"hoa@example.com" not in await opened(pool, LearnerKeys(pool, master), after[0]["id"])
    assert await LearnerKeys(pool, master).seal_statements(TENANT, [naming(MBOX)], AUTHORITY)  # a third generation
    assert await pool.fetchval("SELECT max(generation) FROM learner_keys WHERE wrapped IS NOT NULL AND pseudonym = $1",
                               keyring.pseudonym(TENANT, f"mbox:{MBOX}")) == 3


async def _tables_holding(pool: asyncpg.Pool, text: str) -> list[str]:
    """The tables with a row whose text (bytea as hex, so as clear bytes too) holds ``text``."""
    tables = [r["t"] for r in await pool.fetch(
        "SELECT quote_ident(table_name) AS t FROM information_schema.tables"
        " WHERE table_schema = 'public' AND table_type = 'BASE TABLE'")]
    needles = [text, text.encode().hex()]
    found = []
    for table in tables:
        if await pool.fetchval(f"SELECT EXISTS (SELECT 1 FROM {table} AS r WHERE r::text LIKE ANY($1::text[]))",
                               [f"%{n}%" for n in needles]):
            found.append(table)
    return found


async def test_a_first_key_committed_for_a_request_refused_in_its_group_is_erased_like_any(
    pool: asyncpg.Pool, writer: StatementWriter, database_url: str, tmp_path
) -> None:
    """A request that makes a learner's first key and is refused in its group
    (here a 409) leaves that key committed, and the request's sealed
    identity (its ciphertext) with it: nothing readable without the key.
    Erasing the learner destroys it like any key, the erasure is recorded,
    and `lrs audit verify` passes: the log holds nothing of the request."""
    master = MasterKey(os.urandom(32))
    keyring = LearnerKeys(pool, master)
    first = naming("mailto:lan@example.com")
    await append_sealed(writer, keyring, await seal_made(keyring, [first]))
    other = {**first, "actor": {"objectType": "Agent", "mbox": "mailto:khanh@example.com", "name": "Khanh Vu"}}
    sealed = await seal_made(keyring, [other])
    pseudonym = keyring.pseudonym(TENANT, "mbox:mailto:khanh@example.com")
    assert list(sealed.new_keys) == [pseudonym]
    with pytest.raises(ConflictError):
        await append_sealed(writer, keyring, sealed)
    head = await pool.fetchval("SELECT position FROM log_head")
    assert [tuple(r) for r in await pool.fetch(
        "SELECT generation, wrapped IS NOT NULL FROM learner_keys WHERE pseudonym = $1", pseudonym)] == [(1, True)]
    for clear in ("khanh@example.com", "Khanh Vu"):
        assert await _tables_holding(pool, clear) == []
    erased = await erase_learner(pool, LearnerKeys(pool, master), TENANT, {"mbox": "mailto:khanh@example.com"},
                                 reason="request 36", by="test")
    assert (erased.generations, erased.documents, erased.attachments) == ([1], 0, 0)
    assert erased.position == head + 1
    assert await pool.fetchval("SELECT count(*) FROM learner_keys WHERE pseudonym = $1 AND wrapped IS NOT NULL",
                               pseudonym) == 0
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "lrs", "audit", "verify", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "LRS_DATABASE_URL": database_url, "LRS_DATA_DIR": str(tmp_path), "LRS_LOG_LEVEL": "warning"},
    )
    out, _ = await process.communicate()
    assert process.returncode == 0, out.decode()
